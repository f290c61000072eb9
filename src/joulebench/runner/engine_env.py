"""The environment of an engine's processes: variables a run sets (``engine_env``), and those it records.

Engines read settings from the environment that change what is measured (the CUDA caching allocator's
``PYTORCH_CUDA_ALLOC_CONF``, vLLM's attention backend, NCCL's transports). A run can set them for its engine's
processes only, and every run records the ones in effect, its own and those it inherited, so that two
results that differ by an environment variable say so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from joulebench.errors import UsageError
from joulebench.store.redact import secret_name

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# inherited variables recorded with a run: the runtimes' own settings
RECORDED_PREFIXES = (
    "PYTORCH_", "TORCH_", "TORCHINDUCTOR_", "CUDA_", "NCCL_", "NVSHMEM_", "VLLM_", "TRITON_", "OMP_", "MKL_",
    "TOKENIZERS_", "TRANSFORMERS_", "HF_HUB_OFFLINE", "DS_", "TRTLLM_", "TLLM_",
)  # fmt: skip


def env_problems(env: Any, where: str) -> list[str]:
    """One line per problem: ``env`` must map variable names to strings (numbers are taken as text)."""
    if not isinstance(env, Mapping):
        return [f"{where}: must be a mapping of environment variable names to values"]
    problems = []
    for name, value in env.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append(f"{where}: {name!r} is not an environment variable name")
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(f"{where}.{name}: {value!r} is not a value (a string or a number)")
        elif secret_name(name):  # results are shared: HF_TOKEN, VLLM_API_KEY, TORCH_APITOKEN
            problems.append(
                f"{where}.{name}: looks like a secret; runs store their environment, so set it outside"
            )
    return problems


def as_env(env: Mapping[str, Any], where: str = "engine_env") -> dict[str, str]:
    """``env`` with every value as the text a process sees; raises :class:`UsageError` for bad input."""
    problems = env_problems(env, where)
    if problems:
        raise UsageError(problems[0])
    return {name: str(value) for name, value in env.items()}


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` items (the CLI's ``--engine-env``) as a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--engine-env takes KEY=VALUE, got {pair!r}")
        out[name.strip()] = value
    return as_env(out, "--engine-env")


def recorded(engine_env: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runtime variables an engine process of this run sees: inherited ones with a recorded prefix,
    overridden by the run's own."""
    environ = os.environ if environ is None else environ
    inherited = {k: v for k, v in environ.items() if k.startswith(RECORDED_PREFIXES) and not secret_name(k)}
    return dict(sorted({**inherited, **engine_env}.items()))

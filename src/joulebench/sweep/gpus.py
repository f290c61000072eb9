"""Which GPUs this process may use, and pinning a cell to the ones it needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def visible_gpu_ids(nvml: Any | None = None) -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU NVML lists.
    ``nvml`` is the pynvml module or an object with its names (default: pynvml itself)."""
    env = os.environ.get(CUDA_VISIBLE_DEVICES)
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every GPU.
        valid: list[str] = []
        for d in ids:
            if d.startswith("-"):
                break
            valid.append(d)
        return valid
    return [str(i) for i in range(_nvml_count(nvml))]


def _nvml_count(given: Any | None) -> int:
    nvml = given
    if nvml is None:
        try:
            import pynvml

            nvml = pynvml
        except ImportError:
            return 0
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError: no driver or library, so no GPU to plan for
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    finally:
        nvml.nvmlShutdown()


@contextmanager
def pinned(num_gpus: int, nvml: Any | None = None) -> Iterator[list[str]]:
    """Restrict everything a cell starts (engine workers, the runner's monitor) to the first ``num_gpus``
    visible GPUs, so that its energy counts only the GPUs it uses; a CPU cell (``num_gpus=0``) sees none,
    as a Ray task without GPUs does."""
    ids = visible_gpu_ids(nvml)[: max(num_gpus, 0)]
    before = os.environ.get(CUDA_VISIBLE_DEVICES)
    os.environ[CUDA_VISIBLE_DEVICES] = ",".join(ids)
    try:
        yield ids
    finally:
        if before is None:
            os.environ.pop(CUDA_VISIBLE_DEVICES, None)
        else:
            os.environ[CUDA_VISIBLE_DEVICES] = before

"""Which GPUs this process may use, and pinning a cell to the ones it needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def visible_gpu_ids() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU NVML lists."""
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
    return [str(i) for i in range(_nvml_count())]


def _nvml_count() -> int:
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return 0  # no driver: no GPU to plan for
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


@contextmanager
def pinned(num_gpus: int) -> Iterator[list[str]]:
    """Restrict everything a cell starts (engine workers, the runner's monitor) to the first ``num_gpus``
    visible GPUs, so that its energy counts only the GPUs it uses; a CPU cell (``num_gpus=0``) sees none,
    as a Ray task without GPUs does."""
    ids = visible_gpu_ids()[: max(num_gpus, 0)]
    before = os.environ.get(CUDA_VISIBLE_DEVICES)
    os.environ[CUDA_VISIBLE_DEVICES] = ",".join(ids)
    try:
        yield ids
    finally:
        if before is None:
            os.environ.pop(CUDA_VISIBLE_DEVICES, None)
        else:
            os.environ[CUDA_VISIBLE_DEVICES] = before

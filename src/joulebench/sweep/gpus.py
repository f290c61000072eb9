"""Which GPUs this process may use, and pinning a cell to the ones it needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from joulebench.models.resolve import cache_dir

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
HIP_VISIBLE_DEVICES = "HIP_VISIBLE_DEVICES"


def pin_variable(nvml: Any | None = None) -> str:
    """The variable that picks the GPUs of what a cell starts. ``CUDA_VISIBLE_DEVICES``, which CUDA reads
    and so does ROCm where ``HIP_VISIBLE_DEVICES`` is unset; ``HIP_VISIBLE_DEVICES`` where it is set on a
    host without NVIDIA GPUs (ROCm reads it first, and Ray sets it for a task's AMD GPUs)."""
    if HIP_VISIBLE_DEVICES in os.environ and _nvml_count(nvml) == 0:
        return HIP_VISIBLE_DEVICES
    return CUDA_VISIBLE_DEVICES


def visible_gpu_ids(nvml: Any | None = None, amdsmi: Any | None = None) -> list[str]:
    """The GPU ids this process may use: the pinning variable's (:func:`pin_variable`) when set, else
    every GPU NVML lists, else every AMD GPU amdsmi lists (as ``ROCR_VISIBLE_DEVICES`` leaves them).
    ``nvml``, ``amdsmi``: the modules or objects with their names (default: the modules themselves)."""
    env = os.environ.get(pin_variable(nvml))
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        # CUDA (and HIP) stop at the first invalid entry; "-1" is the usual way to hide every GPU.
        valid: list[str] = []
        for d in ids:
            if d.startswith("-"):
                break
            valid.append(d)
        return valid
    from joulebench.measurement.amdsmi import visible_count

    return [str(i) for i in range(_nvml_count(nvml) or visible_count(amdsmi))]


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
def pinned(num_gpus: int, nvml: Any | None = None, amdsmi: Any | None = None) -> Iterator[list[str]]:
    """Restrict everything a cell starts (engine workers, the runner's monitor) to the first ``num_gpus``
    visible GPUs, so that its energy counts only the GPUs it uses; a CPU cell (``num_gpus=0``) sees none,
    as a Ray task without GPUs does."""
    ids = visible_gpu_ids(nvml, amdsmi)[: max(num_gpus, 0)]
    with _environment({pin_variable(nvml): ",".join(ids)}):
        yield ids


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment (and so its children's) for the context's length; every
    variable is put back as it was, unset where it was unset."""
    before = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in before.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def gpu_set_cache_root(gpu_ids: list[str]) -> Path:
    """Where cells on the GPU set ``gpu_ids`` keep their compile caches when cells share a host."""
    return cache_dir() / "gpu-sets" / ("gpu" + "-".join(gpu_ids))


@contextmanager
def own_compile_caches(engine: str, gpu_ids: list[str]) -> Iterator[dict[str, str]]:
    """Point ``engine``'s compile caches at a folder of this GPU set for as long as the cell runs.

    Cells that run side by side on one host (the Ray executor's tasks) would otherwise share one compile
    cache, so a setup trial recorded cold could be warmed by its neighbour half-way. With a folder per
    GPU set, a cell's cold or warm state is its own, and the same GPU set stays warm for the next cell, as
    a user's own machine would. A CPU cell, or a plan ``env`` that names a folder, is left as it is (the
    plan's ``env`` reaches the engine's processes after this). The user's own caches are never touched."""
    if not gpu_ids:
        yield {}
        return
    from joulebench.engines.registry import get_engine_class

    root = gpu_set_cache_root(gpu_ids)
    chosen = {var: str(root / var.lower()) for var in get_engine_class(engine).compile_cache_vars}
    with _environment(chosen):
        yield chosen

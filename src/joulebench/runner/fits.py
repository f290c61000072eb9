"""Weights that cannot fit the machine are refused before anything is written or started: a 70B model on a
laptop, or on one GPU, would otherwise be written out (a preset), loaded for minutes, then killed.

Only a certain bound is used: the weights' own bytes as stored against the device's whole memory (the
largest visible GPU's times the GPUs asked for, or the machine's RAM). The KV cache and the engine's
working memory come on top, and their shortfall is the engine's to report; this check never refuses a
model that could load.
"""

from __future__ import annotations

from pathlib import Path

from joulebench.errors import UsageError
from joulebench.runner.config import RunConfig

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
BYTES_PER_PARAMETER = 2  # the presets are written in bfloat16


def weights_bytes(model: str) -> int | None:
    """The bytes of the model's weights as stored; ``None`` where it cannot be known here (a hub ID)."""
    from joulebench.models.presets import PRESET_NAMES, get_preset

    if model in PRESET_NAMES:
        from joulebench.models.presets import LlamaArchitecture

        preset = get_preset(model)
        if isinstance(preset, LlamaArchitecture):
            return preset.num_parameters() * BYTES_PER_PARAMETER
        return None  # the packaged model: small, its size known once converted
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    # a folder may ship one model in several formats (safetensors beside .bin): an engine loads one, so the
    # smallest set is the bound that never refuses a model that could load
    by_format: dict[str, int] = {}
    for p in folder.iterdir():
        if p.suffix in WEIGHT_SUFFIXES and p.is_file():
            by_format[p.suffix] = by_format.get(p.suffix, 0) + p.stat().st_size
    return min(by_format.values(), default=0)


def capacity_bytes(device: str, tensor_parallel: int) -> tuple[int, str] | None:
    """The most memory the weights could have, and what it is, in words; ``None`` where unknown."""
    from joulebench.runner.environment import gpus, memory_bytes

    if device == "cuda":
        sizes = [g["memory_bytes"] for g in gpus() if g.get("memory_bytes")]
        if not sizes:
            return None
        n = min(tensor_parallel, len(sizes))
        return max(sizes) * n, f"{n} GPU{'s' if n > 1 else ''} of {max(sizes) / 1e9:.1f} GB"
    total = memory_bytes()
    return (total, f"this machine's {total / 1e9:.1f} GB of memory") if total else None


def check_fits(config: RunConfig, device: str) -> None:
    """Refuse a model whose weights alone exceed the memory they would load into."""
    from joulebench.runner.prepare import served

    if served(config):
        return  # the server loads it, maybe on another machine
    need = weights_bytes(config.model)
    have = capacity_bytes(device, config.tensor_parallel)
    if need is None or have is None or need <= have[0]:
        return
    fix = "more GPUs (--tensor-parallel)" if device == "cuda" else "a machine with more memory"
    raise UsageError(
        f"{config.model}: its weights alone are {need / 1e9:.1f} GB, more than {have[1]}: "
        f"a smaller model, or {fix}"
    )

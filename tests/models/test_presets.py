"""The architecture presets against the published Llama 3.1 / 3.2 Instruct checkpoints."""

from __future__ import annotations

import pytest

from joulebench.errors import ModelError
from joulebench.models.presets import LLAMA_PRESETS, get_preset
from joulebench.models.random_weights import plan_shards, shard_file_names

# (hidden, intermediate, layers, heads, kv heads, rope factor, tied, parameters in billions, shards)
PUBLISHED = {
    "llama-3.2-1b": (2048, 8192, 16, 32, 8, 32.0, True, 1.24, 1),
    "llama-3.2-3b": (3072, 8192, 28, 24, 8, 32.0, True, 3.21, 2),
    "llama-3.1-8b": (4096, 14336, 32, 32, 8, 8.0, False, 8.03, 4),
    "llama-3.1-70b": (8192, 28672, 80, 64, 8, 8.0, False, 70.55, 30),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_config_matches_the_published_checkpoint(name: str) -> None:
    hidden, inter, layers, heads, kv, factor, tied, params_b, shards = PUBLISHED[name]
    arch = LLAMA_PRESETS[name]
    c = arch.config()
    assert (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]) == (hidden, inter, layers)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["tie_word_embeddings"]) == (heads, kv, tied)
    assert c["rope_scaling"] == {
        "factor": factor,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    }
    assert (c["vocab_size"], c["bos_token_id"], c["eos_token_id"]) == (
        128256,
        128000,
        [128001, 128008, 128009],
    )
    assert (c["max_position_embeddings"], c["rope_theta"], c["torch_dtype"]) == (131072, 500000.0, "bfloat16")
    assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama"
    assert ("head_dim" in c) == name.startswith("llama-3.2")
    assert round(arch.num_parameters() / 1e9, 2) == params_b
    assert len(plan_shards(arch, "BF16")) == shards
    g = arch.generation_config()
    assert g["eos_token_id"] == [128001, 128008, 128009] and g["do_sample"] is True
    assert (g["temperature"], g["top_p"]) == (0.6, 0.9)


def test_shard_names() -> None:
    assert shard_file_names(1) == ["model.safetensors"]
    assert shard_file_names(2) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def test_unknown_preset() -> None:
    with pytest.raises(ModelError, match="unknown model preset 'llama-9b'"):
        get_preset("llama-9b")

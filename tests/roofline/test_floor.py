"""The decode step's bytes and FLOPs against a published shape's own tensor list, and the floor worked out
by hand for a two-step decode."""

from __future__ import annotations

import json

import pytest

from joulebench.models.presets import LlamaArchitecture
from joulebench.roofline.floor import CardLimits, decode_floor
from joulebench.roofline.shape import DecoderShape, read_shape

# Llama 3.2 1B as Meta publishes it: 16 layers, 2048 wide, 32 query and 8 KV heads of 64, tied embeddings
LLAMA_1B = LlamaArchitecture("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 2048, 8192, 16, 32, 8, 32.0,
                             True, True)  # fmt: skip


def test_the_shape_counts_every_weight_of_the_checkpoint_once() -> None:
    shape = DecoderShape.from_config(LLAMA_1B.config())
    embedding = shape.vocab * shape.hidden
    # the tensor list of the checkpoint: layers, embedding (the tied head), final norm
    assert shape.layer_parameters + embedding + shape.hidden == LLAMA_1B.num_parameters()
    assert shape.dtype_bytes == 2 and shape.head_dim == 64 and shape.kv_heads == 8


def test_a_decode_step_moves_the_weights_once_and_each_requests_kv_cache() -> None:
    shape = DecoderShape.from_config(LLAMA_1B.config())
    weights = (shape.matmul_parameters + shape.hidden) * 2
    kv_per_token = 2 * 16 * 8 * 64 * 2  # K and V, 16 layers, 8 heads of 64, bf16: 32 KiB
    assert kv_per_token == 32_768
    one = shape.step_bytes(batch=1, context=99)
    eight = shape.step_bytes(batch=8, context=99)
    assert one == weights + 2048 * 2 + 100 * kv_per_token
    assert eight - one == 7 * (2048 * 2 + 100 * kv_per_token)  # the weights are read once for the batch
    flops = shape.step_flops(batch=8, context=99)
    assert flops == 8 * (2 * shape.matmul_parameters + 4 * 100 * 32 * 64 * 16)


def test_the_floor_of_a_two_step_decode_worked_by_hand() -> None:
    # one layer, one head of 2, 4 wide; so small that every number can be checked on paper
    shape = DecoderShape(layers=1, hidden=4, heads=2, kv_heads=1, head_dim=2, intermediate=8, vocab=10,
                         tied_embeddings=True, dtype_bytes=2)  # fmt: skip
    # layer: attention 4*2*(2*2 + 2*1) = 48, mlp 3*8*4 = 96, norms 8 -> 152; + head 40 -> 192 multiplied
    assert shape.matmul_parameters == 192
    limits = CardLimits("card", bytes_per_s=1000.0, flops_per_s=1000.0, idle_power_w=10.0, j_per_byte=0.01,
                        j_per_flop=0.001, j_per_byte_bound=0.001, j_per_flop_bound=0.0001)  # fmt: skip
    floor = decode_floor(shape, limits, batch=2, prompt_tokens=3, output_tokens=3)
    assert floor is not None
    expected = bound = 0.0
    for context in (4, 5):  # the two decode steps after the prefill's token
        moved = (192 + 4) * 2 + 2 * 4 * 2 + 2 * (context + 1) * (2 * 1 * 1 * 2 * 2)
        done = 2 * (2 * 192 + 4 * (context + 1) * 2 * 2 * 1)
        expected += 10.0 * max(moved, done) / 1000.0 + moved * 0.01 + done * 0.001
        bound += moved * 0.001 + done * 0.0001
        assert moved < done  # this toy is compute-bound; the step time is the FLOPs'
    assert floor.j_per_token == pytest.approx(expected / 4)
    assert floor.bound_j_per_token == pytest.approx(bound / 4)
    assert floor.memory_bound_steps == 0.0
    assert decode_floor(shape, limits, batch=2, prompt_tokens=3, output_tokens=1) is None


def test_a_model_without_a_decoder_config_has_no_shape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert read_shape(str(tmp_path), None) is None
    assert read_shape(str(tmp_path / "model.gguf"), None) is None
    assert read_shape(None, None) is None
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_1B.config()))
    shape = read_shape(str(tmp_path), "float32")
    assert shape is not None and shape.dtype_bytes == 4  # the dtype the engine ran in, not the checkpoint's


def test_a_card_without_an_idle_baseline_has_no_floor_as_the_report_reads_it() -> None:
    """Rows as a DataFrame gives them (NULL is NaN): a GEMM without above-idle energy is no limit."""
    from joulebench.results.floor import card_limits

    def row(kernel: str, above: float, idle: float, bound: float) -> dict[str, object]:
        return {"id": 1, "created_unix_s": 1.0, "device_name": "card", "kernel": kernel, "dtype": "bfloat16",
                "units": 1e12, "start_s": 0.0, "end_s": 10.0, "idle_power_w": idle,
                "above_idle_energy_j": above, "uncertainty_j": bound}  # fmt: skip

    nan = float("nan")
    assert card_limits([row("copy", 3000.0, 70.0, 1.0), row("gemm", nan, 70.0, 1.0)], "card", 2) is None
    found = card_limits([row("copy", 3000.0, 70.0, nan), row("gemm", 2000.0, 72.0, 2.0)], "card", 2)
    assert found is not None
    limits, _ = found
    assert limits.j_per_byte_bound is None and limits.j_per_flop_bound == pytest.approx(2e-12)
    assert limits.idle_power_w == 71.0 and limits.bytes_per_s == 1e11

"""The transformers adapter, end to end on the tiny real Llama, on CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.transformers import TransformersEngine
from joulebench.errors import MissingDependency, ModelError, UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.workloads.spec import SamplingSpec
from tests.engines.conftest import (
    PROMPTS,
    assert_request_times,
    assert_sequential_setup,
    requests,
)

pytest.importorskip("transformers")


def start(model: Path, **config: object) -> tuple[TransformersEngine, RecordingMarks]:
    marks = RecordingMarks()
    engine = TransformersEngine(EngineConfig(model=str(model), device="cpu", **config), marks)  # type: ignore[arg-type]
    return engine, marks


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fixed_mode_counts_every_requested_token(tiny_llama: Path, dtype: str) -> None:
    from transformers import AutoTokenizer

    engine, marks = start(tiny_llama, dtype=dtype)
    info = engine.setup()
    assert (info.engine, info.details["dtype"], info.details["device"]) == ("transformers", dtype, "cpu")
    assert_sequential_setup(marks.spans)

    before = time.monotonic()
    responses = engine.generate(requests(), SamplingSpec(max_output_tokens=16, length_mode="fixed"))
    after = time.monotonic()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert [r.index for r in responses] == [0, 1, 2]
    for r, prompt in zip(responses, PROMPTS, strict=True):
        assert (r.output_tokens, r.finish_reason) == (16, "length")
        assert r.prompt_tokens == len(tok(prompt).input_ids)
        assert_request_times(r, before, after)
        assert len(r.token_times_s) == 16 and list(r.token_times_s) == sorted(r.token_times_s)
        assert r.finish_s == r.token_times_s[-1]
    engine.close()


def test_natural_mode_stops_at_eos_as_the_tokenizer_counts(stopping_llama: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sampling = SamplingSpec(max_output_tokens=12, temperature=0.0, length_mode="natural")
    engine, _ = start(stopping_llama, dtype="float32")
    engine.setup()
    responses = engine.generate(requests(2), sampling)

    # The reference: plain generate on the same batch, cut at the tokenizer's EOS.
    tok = AutoTokenizer.from_pretrained(stopping_llama, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(stopping_llama, dtype=torch.float32)
    batch = tok(list(PROMPTS[:2]), return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    for r, ids in zip(responses, out[:, batch.input_ids.shape[1] :].tolist(), strict=True):
        expected = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
        assert r.output_tokens == expected
        assert r.finish_reason == ("stop" if tok.eos_token_id in ids else "length")
        assert r.finish_s == r.token_times_s[-1]
    assert responses[0].finish_reason == "stop" and responses[0].output_tokens <= 3
    engine.close()


def test_first_token_is_one_token(tiny_llama: Path) -> None:
    engine, _ = start(tiny_llama, dtype="float32", options={"attn_implementation": "eager"})
    info = engine.setup()
    assert info.details["attn_implementation"] == "eager"
    r = engine.first_token(requests(1)[0], SamplingSpec(max_output_tokens=64, length_mode="natural"))
    assert r.output_tokens == 1 and r.first_token_s == r.finish_s
    engine.close()


def test_static_cache_compiled_variant_matches_eager(tiny_llama: Path) -> None:
    sampling = SamplingSpec(max_output_tokens=6, temperature=0.0)
    eager, _ = start(tiny_llama, dtype="float32")
    eager.setup()
    expected = [r.text for r in eager.generate(requests(2), sampling)]
    eager.close()

    compiled, _ = start(tiny_llama, dtype="float32", options={"compile": True})
    info = compiled.setup()
    assert info.details["compile"] is True
    responses = compiled.generate(requests(2), sampling)
    assert [r.output_tokens for r in responses] == [6, 6]
    assert [r.text for r in responses] == expected
    compiled.close()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"options": {"attn": "sdpa"}}, UsageError),
        ({"options": {"attn_implementation": "flash"}}, UsageError),
        ({"dtype": "float8"}, UsageError),
        ({"device": "tpu"}, UsageError),
        ({"tensor_parallel": 2}, UsageError),
        ({"options": {"tp_plan": "auto"}, "tensor_parallel": 2, "device": "cuda"}, UsageError),
        ({"options": {"tp_plan": "auto"}, "tensor_parallel": 2}, UsageError),  # one process, not 2 ranks
    ],
)
def test_bad_settings_are_usage_errors(tiny_llama: Path, config: dict, error: type) -> None:
    settings = {"device": "cpu", **config}
    engine = TransformersEngine(EngineConfig(model=str(tiny_llama), **settings), RecordingMarks())
    with pytest.raises(error):
        engine.setup()


def test_flash_attention_without_its_package_names_the_install(tiny_llama: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    engine, _ = start(tiny_llama, options={"attn_implementation": "flash_attention_2"})
    with pytest.raises(MissingDependency, match="pip install flash-attn"):
        engine.setup()


def test_a_missing_model_folder_is_a_model_error(tmp_path: Path) -> None:
    engine, _ = start(tmp_path / "no-such-model")
    with pytest.raises(ModelError, match="no-such-model"):
        engine.setup()


def test_without_transformers_setup_names_the_extra(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    engine, _ = start(tiny_llama)
    with pytest.raises(MissingDependency, match=r"joulebench\[hf\]"):
        engine.setup()

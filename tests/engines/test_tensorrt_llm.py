"""The TensorRT-LLM adapter without TensorRT-LLM (it cannot be installed here): errors, argument mapping,
the conversion of outputs shaped like its ``RequestOutput``, and setup, generate and close end to end on
both backends against the stand-in module (engines/tensorrt_llm_fake.py) that refuses what 1.x refuses."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.tensorrt_llm import (
    TensorRTLLMEngine,
    llm_kwargs,
    sampling_kwargs,
    seed_per_request,
    to_response,
)
from joulebench.errors import JoulebenchWarning, MissingDependency, UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.workloads.spec import Request, SamplingSpec


@dataclass
class CompletionOutput:  # the fields of tensorrt_llm's CompletionOutput that the adapter reads
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    request_id: int
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


def test_setup_without_the_package_names_the_extra() -> None:
    try:
        import tensorrt_llm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt_llm is installed here")
    marks = RecordingMarks()
    engine = TensorRTLLMEngine(EngineConfig(model="m"), marks)
    with pytest.raises(MissingDependency, match=r"pip install 'joulebench\[tensorrt-llm\]'"):
        engine.setup()
    assert [n for n, _, _ in marks.spans] == ["import"]


def test_llm_arguments() -> None:
    config = EngineConfig(
        model="meta-llama/Llama-3.2-1B",
        dtype="bfloat16",
        tensor_parallel=2,
        max_model_len=4096,
        max_batch_size=64,
        options={"backend": "pytorch"},
    )
    # the backend is which LLM class, not an argument of it
    assert llm_kwargs(config) == {
        "model": "meta-llama/Llama-3.2-1B",
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_seq_len": 4096,
        "max_batch_size": 64,
    }


def test_cpu_is_refused_before_any_import() -> None:
    with pytest.raises(UsageError, match="NVIDIA GPUs only"):
        TensorRTLLMEngine(EngineConfig(model="m", device="cpu"), RecordingMarks()).setup()


def test_sampling_arguments() -> None:
    fixed = sampling_kwargs(SamplingSpec(max_output_tokens=128, length_mode="fixed", seed=3))
    assert fixed == {"max_tokens": 128, "temperature": 0.8, "top_p": 0.95, "ignore_eos": True, "seed": 3,
                     "return_perf_metrics": True}  # fmt: skip
    greedy = sampling_kwargs(
        SamplingSpec(max_output_tokens=5, temperature=0.0, length_mode="natural", seed=None)
    )
    assert greedy == {"max_tokens": 5, "temperature": 0.0, "ignore_eos": False, "return_perf_metrics": True}


def test_response_counts_the_token_ids() -> None:
    output = RequestOutput(
        request_id=0,
        prompt="Hi",
        prompt_token_ids=[1, 22, 23],
        outputs=[CompletionOutput(index=0, text="Hello there", token_ids=[5, 6, 7, 2], finish_reason="stop")],
    )
    r = to_response(Request(index=4, prompt="Hi"), output, submit_s=12.5)
    assert (r.index, r.output_tokens, r.prompt_tokens, r.finish_reason) == (4, 4, 3, "stop")
    assert (r.submit_s, r.first_token_s, r.finish_s, r.text) == (12.5, None, None, "Hello there")


def _config(**options: object) -> EngineConfig:
    return EngineConfig(model="/models/llama-3.2-1b", dtype="bfloat16", max_batch_size=8, options=options)


def test_options_a_backend_refuses_are_refused_before_anything_starts() -> None:
    for options, words in [
        ({"build_config": {"max_batch_size": 8}}, "belong to the TensorRT backend"),
        ({"backend": "onnx"}, "backend must be one of pytorch, tensorrt"),
    ]:
        with pytest.raises(UsageError, match=words):
            TensorRTLLMEngine.check_config(_config(**options))
    TensorRTLLMEngine.check_config(_config(backend="tensorrt", build_config={"max_batch_size": 8}))


def test_setup_generate_and_close_on_each_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from joulebench.engines import tensorrt_llm_fake

    tensorrt_llm_fake.install(monkeypatch)
    monkeypatch.setenv("TLLM_LLMAPI_BUILD_CACHE_ROOT", str(tmp_path / "engines"))
    monkeypatch.delenv("TLLM_LLMAPI_BUILD_CACHE", raising=False)
    requests = [Request(0, "Tell me a story"), Request(1, "Why is the sky blue")]
    sampling = SamplingSpec(max_output_tokens=6, length_mode="fixed")
    for backend, cls in [("pytorch", tensorrt_llm_fake.TorchLLM), ("tensorrt", tensorrt_llm_fake.TrtLLM)]:
        marks = RecordingMarks()
        engine = TensorRTLLMEngine(_config(backend=backend), marks)
        if backend == "pytorch":  # 1.2's PyTorch sampler takes no per-request seed: said, and recorded
            with pytest.warns(JoulebenchWarning, match=r"^TensorRT-LLM 1\.2\.1's PyTorch backend ignores"):
                info = engine.setup()
            assert info.details["seed_per_request"] == "ignored" and len(info.details["caveats"]) == 1
        else:
            info = engine.setup()
            assert info.details["seed_per_request"] == "honoured" and info.details["caveats"] == []
        assert isinstance(engine.llm, cls) and "backend" not in engine.llm.args
        assert [n for n, _, _ in marks.spans] == ["import", "engine_init"]
        assert info.version == "1.2.1" and info.details["backend"] == backend
        if backend == "tensorrt":  # its build cache is on where a root is given, and its build recorded
            assert info.details["build_cache"] is True
            stats = info.details["build_stats"]
            assert stats["build_steps_info"] == [["build_engine", 0.01], ["save_engine", 0.002]]
        else:
            assert info.details["build_cache"] is None and info.details["build_stats"] is None
        before = time.monotonic()
        responses = engine.generate(requests, sampling)
        after = time.monotonic()
        for r in responses:
            assert r.output_tokens == 6 and r.finish_reason == "length"
            # the perf metrics' times, on this process's clock, inside the call
            assert r.submit_s is not None and r.first_token_s is not None and r.finish_s is not None
            assert before <= r.submit_s < r.first_token_s < r.finish_s <= after
            assert r.ttft_s is not None and r.ttft_s >= tensorrt_llm_fake.STEP_S
        assert "Processed prompts" not in capfd.readouterr().err  # the progress bar is off
        first = engine.first_token(requests[0], sampling)  # the setup trial's end: its first token
        assert first.output_tokens == 1 and first.first_token_s is not None
        assert engine.perf_times_dropped == 0
        llm = engine.llm
        engine.close()
        assert llm.shut_down and engine.llm is None


def test_times_on_another_clock_are_dropped_not_shifted(monkeypatch: pytest.MonkeyPatch) -> None:
    from joulebench.engines import tensorrt_llm_fake

    tensorrt_llm_fake.install(monkeypatch)
    monkeypatch.setattr(tensorrt_llm_fake, "clock", time.time)  # wall clock: decades after the boot
    engine = TensorRTLLMEngine(_config(), RecordingMarks())
    with pytest.warns(JoulebenchWarning):  # the seed it ignores
        engine.setup()
    responses = engine.generate([Request(0, "hi")], SamplingSpec(max_output_tokens=3))
    assert responses[0].output_tokens == 3 and responses[0].first_token_s is None
    assert responses[0].submit_s is not None and engine.perf_times_dropped == 1
    engine.close()


def test_what_tensorrt_llm_refuses_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from joulebench.engines import tensorrt_llm_fake

    tensorrt_llm_fake.install(monkeypatch)
    engine = TensorRTLLMEngine(_config(kv_cache_fraction=0.9), RecordingMarks())
    with pytest.raises(UsageError, match="TensorRT-LLM refused the engine arguments: 1 validation error"):
        engine.setup()


def test_which_releases_ignore_the_per_request_seed() -> None:
    assert [seed_per_request("pytorch", v) for v in ("1.0.0", "1.1.0", "1.2.1", "1.2.0rc4")] == [
        "ignored"
    ] * 4
    assert seed_per_request("pytorch", "1.3.0") == "unknown"  # PR 17172's release is not known here
    assert seed_per_request("pytorch", "unknown") == "unknown"
    assert seed_per_request("tensorrt", "1.2.1") == "honoured"


def test_the_runs_summary_shows_each_engine_caveat_once() -> None:
    from joulebench.runner.summary import engine_caveats

    said = {"engine_info": {"details": {"caveats": ["seed ignored"]}}}
    trials = [{"details": said}, {"details": None}, {"details": said}, {"details": {"engine_info": None}}]
    assert engine_caveats(trials) == ["seed ignored"]

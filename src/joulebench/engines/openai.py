"""The ``openai`` engine: any server that speaks the OpenAI completions or chat API (vLLM, SGLang, TGI,
llama.cpp, ...), driven the way ``vllm bench serve`` drives it: streamed requests, an optional limit on
requests in flight, and arrivals at a request rate (Poisson, or Gamma with a burstiness).

With ``server_cmd`` the adapter starts the server itself and the whole time until it answers is the
setup stage ``server_start``; a vLLM server's own log lines split it as the ``vllm`` adapter splits
``LLM(...)``: ``engine_init`` from the spawn to "Starting to load model" (or "Loading model from scratch"),
``model_load`` from there to the weights on the device ("Loading weights took" / "Model loading took"), and
``engine_init`` again from there to "Application startup complete" (KV-cache profiling, compilation, CUDA
graphs, the HTTP server). Without it, the server is already running and setup only checks that it answers.

Token counts come from the server's ``usage.completion_tokens`` (its tokenizer's count); token arrival
times from the streamed chunks (repeated per token when a chunk carries several token IDs).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines.base import (
    STAGE_ENGINE_INIT,
    STAGE_IMPORT,
    STAGE_MODEL_LOAD,
    Engine,
    EngineConfig,
    EngineInfo,
)
from joulebench.engines.openai_stream import StreamState, request_body
from joulebench.engines.server import ServerProcess, first_times, parse_command
from joulebench.engines.sglang_events import sglang_log_event
from joulebench.engines.vllm_events import match_event
from joulebench.errors import EngineError, JoulebenchWarning, UsageError, require
from joulebench.measurement.markers import marked

if TYPE_CHECKING:
    import asyncio

    import httpx

    from joulebench.measurement.markers import StageMarks
    from joulebench.workloads.spec import Request, Response, SamplingSpec

#: the setup stage of a server started by the adapter: spawn until it first answers
STAGE_SERVER_START = "server_start"

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
APIS = ("completions", "chat")

# The HTTP server's own last word before it answers; every other event is vllm_events.EVENTS, the one
# table of vLLM's log messages, shared with the vllm adapter.
APP_READY = "Application startup complete"


def vllm_log_event(text: str) -> str | None:
    """The event key of one line of a vLLM server's log, or None."""
    found = match_event(text)
    if found is not None:
        return found[0].key
    return "app_ready" if APP_READY in text else None


def server_log_event(text: str) -> str | None:
    """The event key of one line of a vLLM or an SGLang server's log (engines/sglang_events.py), or None."""
    return vllm_log_event(text) or sglang_log_event(text)


@dataclass(frozen=True)
class OpenAIOptions:
    """``EngineConfig.options`` of the openai engine, checked."""

    endpoint: str = DEFAULT_ENDPOINT
    api: str = "completions"
    api_key: str | None = None
    max_concurrency: int | None = None
    request_rate: float = math.inf
    burstiness: float = 1.0
    served_model: str | None = None
    server_cmd: str | None = None
    server_log: str | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 1800.0
    request_timeout_s: float = 600.0
    return_token_ids: bool | None = None  # None: ask for them when the server is vLLM
    # A per-request seed sends vLLM (and others) down a slower per-request sampling path, which would be
    # measured as the server's own cost: off by default; the server's own seed still applies.
    request_seed: bool = False
    extra_body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, given: Mapping[str, Any]) -> OpenAIOptions:
        options = dict(given)
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            known = ", ".join(sorted(cls.__dataclass_fields__))
            raise UsageError(f"unknown openai engine option(s) {', '.join(sorted(unknown))}; known: {known}")
        for key in ("request_rate", "burstiness", "startup_timeout_s", "request_timeout_s"):
            if key in options:
                options[key] = _number(key, options[key])
        o = cls(**options)
        if not o.endpoint.startswith(("http://", "https://")):
            raise UsageError(f"endpoint must be an http(s) URL like {DEFAULT_ENDPOINT}, got {o.endpoint!r}")
        if o.api not in APIS:
            raise UsageError(f"api must be one of {', '.join(APIS)}, got {o.api!r}")
        if o.max_concurrency is not None and (
            not isinstance(o.max_concurrency, int) or o.max_concurrency < 1
        ):
            raise UsageError(f"max_concurrency must be a whole number >= 1, got {o.max_concurrency!r}")
        if not o.request_rate > 0:
            raise UsageError(f"request_rate must be > 0 requests/s (or inf), got {o.request_rate!r}")
        if not o.burstiness > 0:
            raise UsageError(f"burstiness must be > 0, got {o.burstiness!r}")
        if not (o.startup_timeout_s > 0 and o.request_timeout_s > 0):
            raise UsageError("startup_timeout_s and request_timeout_s must be > 0")
        if not isinstance(o.request_seed, bool):
            raise UsageError(f"request_seed must be true or false, got {o.request_seed!r}")
        if o.return_token_ids is not None and not isinstance(o.return_token_ids, bool):
            raise UsageError(f"return_token_ids must be true or false, got {o.return_token_ids!r}")
        if o.server_cmd is not None:
            parse_command(o.server_cmd)
        return o

    @property
    def root(self) -> str:
        """The server's root URL, where vLLM and TGI serve /health and /version."""
        base = self.endpoint.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base


class OpenAIEngine(Engine):
    """A client of an OpenAI-compatible server, optionally starting that server itself."""

    name: ClassVar[str] = "openai"
    extra: ClassVar[str] = "openai"
    package: ClassVar[str] = "httpx"
    serves_over_http: ClassVar[bool] = True

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        OpenAIOptions.from_options(config.options)  # unknown options, an endpoint that is no URL

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.options = OpenAIOptions.from_options(config.options)
        self.server: ServerProcess | None = None
        self.served_model: str | None = None
        self.return_token_ids = False
        self.server_log_events_s: dict[str, float] = {}  # vLLM log records, seconds after the spawn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    # --- setup --------------------------------------------------------------------------------------

    def setup(self) -> EngineInfo:
        try:
            return self._setup()
        except BaseException:
            self.close()  # a server we started must not outlive a failed setup
            raise

    def _setup(self) -> EngineInfo:
        o = self.options
        with marked(self.marks, STAGE_IMPORT):
            httpx = require("httpx", "openai")
        headers = self._headers()
        stages = "external server: setup not measured"
        if o.server_cmd is not None:
            if _get(httpx, f"{o.endpoint.rstrip('/')}/models", headers) is not None:
                raise UsageError(f"a server already answers at {o.endpoint}; stop it or choose another port")
            stages = self._start_server(httpx, headers)
        models = self._list_models(httpx, headers)
        self.served_model = self._pick_model(models)
        owned_by = next((m.get("owned_by") for m in models if m.get("id") == self.served_model), None)
        is_vllm = owned_by == "vllm"
        self.return_token_ids = is_vllm if o.return_token_ids is None else bool(o.return_token_ids)
        version = _server_version(httpx, o.root, headers) or "unknown"
        self._open_client(httpx)
        return EngineInfo(
            engine=self.name,
            version=version,
            details={
                "server": owned_by or "unknown",
                "endpoint": o.endpoint,
                "api": o.api,
                "served_model": self.served_model,
                "server_cmd": o.server_cmd,
                "server_log": str(self.server.log_path) if self.server else None,
                "setup_stages": stages,
                "server_log_events_s": self.server_log_events_s,
                "max_concurrency": o.max_concurrency,
                "request_rate": o.request_rate,
                "burstiness": o.burstiness,
                "return_token_ids": self.return_token_ids,
                "client": f"httpx {httpx.__version__}",
            },
        )

    def _start_server(self, httpx: Any, headers: dict[str, str]) -> str:
        o = self.options
        assert o.server_cmd is not None
        log = o.server_log or _temp_log_path()
        self.server = ServerProcess(parse_command(o.server_cmd), log, env=o.server_env)
        spawn_s = self.server.start()
        models_url = f"{o.endpoint.rstrip('/')}/models"

        def answers() -> bool:
            return (
                _get(httpx, models_url, headers) is not None
                or _get(httpx, f"{o.root}/health", headers) == 200
            )

        ready_s = self.server.wait_until(answers, o.startup_timeout_s)
        self.marks.span(STAGE_SERVER_START, spawn_s, ready_s)
        # Stamps are read instants (up to one poll late): a record read after the server answered was
        # written before it, so each is clamped to the answer and the stages nest inside server_start.
        seen = first_times(self.server.stop_tailing(), server_log_event)
        events = {k: min(t, ready_s) for k, t in seen.items()}
        self.server_log_events_s = {k: t - spawn_s for k, t in events.items()}
        load_s = events.get("load_start")
        if load_s is None:
            return "server_start only (no known log records)"
        served_s = events.get("app_ready", ready_s)
        self.marks.span(STAGE_ENGINE_INIT, spawn_s, load_s)
        loaded_s = events.get("load_done", events.get("weights_loaded"))  # as the vllm adapter ends it
        if loaded_s is None or not load_s <= loaded_s <= served_s:
            self.marks.span(STAGE_MODEL_LOAD, load_s, max(load_s, served_s))
            return "engine_init and model_load (until the server answered) from the server log"
        # As the vllm adapter counts it: loading ends with the weights on the device; KV-cache profiling,
        # compilation and CUDA graphs after it are engine initialisation again.
        self.marks.span(STAGE_MODEL_LOAD, load_s, loaded_s)
        self.marks.span(STAGE_ENGINE_INIT, loaded_s, served_s)
        return "engine_init and model_load from the server log"

    def _list_models(self, httpx: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.options.endpoint.rstrip('/')}/models"
        try:
            r = httpx.get(url, headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            hint = "" if self.options.server_cmd else "; start the server first or give server_cmd"
            raise UsageError(f"no OpenAI-compatible server answers at {url} ({_why(exc)}){hint}") from None
        if r.status_code in (401, 403):
            raise UsageError(
                f"the server at {url} refused the API key (HTTP {r.status_code}); set OPENAI_API_KEY"
            )
        if r.status_code == 404 and self.options.served_model:
            return [{"id": self.options.served_model}]
        if r.status_code != 200:
            raise UsageError(
                f"GET {url} answered HTTP {r.status_code}; give served_model if it has no /models"
            )
        try:
            data = r.json()["data"]
            return [m for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"GET {url} did not return an OpenAI model list") from None

    def _pick_model(self, models: list[dict[str, Any]]) -> str:
        ids = [str(m["id"]) for m in models]
        wanted = self.options.served_model
        if wanted is not None:
            if wanted not in ids:
                raise UsageError(
                    f"the server does not serve {wanted!r}; it serves: {', '.join(ids) or 'nothing'}"
                )
            return wanted
        if self.config.model in ids:
            return self.config.model
        if not ids:
            raise UsageError("the server lists no models; give served_model")
        return ids[0]

    def _open_client(self, httpx: Any) -> None:
        import asyncio

        o = self.options
        n = o.max_concurrency
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(
            headers=self._headers(),
            # One keep-alive connection per request in flight, as many as the concurrency allows.
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            timeout=httpx.Timeout(o.request_timeout_s, connect=30.0),
        )

    def _headers(self) -> dict[str, str]:
        key = self.options.api_key or os.environ.get("OPENAI_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    # --- generation ---------------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        if self._loop is None or self._client is None:
            raise EngineError("generate() called before setup()")
        responses = self._loop.run_until_complete(self._batch(requests, sampling, paced=True))
        mismatched = [r.index for r, s in responses if s.ids_disagree]
        if mismatched:
            warnings.warn(
                f"streamed token IDs disagree with usage.completion_tokens for requests {mismatched[:10]}",
                JoulebenchWarning,
                stacklevel=2,
            )
        return [r for r, _ in responses]

    def body(self, request: Request, sampling: SamplingSpec) -> dict[str, Any]:
        """The JSON body of one streamed request."""
        assert self.served_model is not None
        return request_body(
            self.options.api,
            self.served_model,
            request.prompt,
            sampling if self.options.request_seed else replace(sampling, seed=None),
            self.return_token_ids,
            self.options.extra_body,
        )

    def first_token(self, request: Request, sampling: SamplingSpec) -> Response:
        """One request with one output token, sent at once whatever the request rate."""
        if self._loop is None or self._client is None:
            raise EngineError("first_token() called before setup()")
        one = replace(sampling, max_output_tokens=1, length_mode="fixed")
        return self._loop.run_until_complete(self._batch([request], one, paced=False))[0][0]

    async def _batch(
        self, requests: Sequence[Request], sampling: SamplingSpec, paced: bool
    ) -> list[tuple[Response, StreamState]]:
        import asyncio

        from joulebench.workloads.arrivals import arrival_times_s

        o = self.options
        rate = o.request_rate if paced else math.inf
        offsets_s = arrival_times_s(len(requests), rate, o.burstiness, seed=self.config.seed)
        # The first request goes at once: a batch's window holds no idle wait before any work.
        offsets_s = [t - offsets_s[0] for t in offsets_s] if offsets_s else []
        limit: AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(o.max_concurrency) if o.max_concurrency else nullcontext()
        )
        t0 = time.monotonic()
        return await asyncio.gather(
            *(self._one(req, sampling, t0 + off, limit) for req, off in zip(requests, offsets_s, strict=True))
        )

    async def _one(
        self,
        request: Request,
        sampling: SamplingSpec,
        arrive_s: float,
        limit: AbstractAsyncContextManager[Any],
    ) -> tuple[Response, StreamState]:
        import asyncio

        import httpx

        assert self._client is not None and self.served_model is not None
        delay_s = arrive_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        path = "chat/completions" if self.options.api == "chat" else "completions"
        url = f"{self.options.endpoint.rstrip('/')}/{path}"
        body = self.body(request, sampling)
        async with limit:
            state = StreamState(submit_s=time.monotonic())
            try:
                async with self._client.stream("POST", url, json=body) as r:
                    if r.status_code != 200:
                        detail = error_message((await r.aread()).decode(errors="replace"))
                        state.fail(f"HTTP {r.status_code}: {detail}")
                    else:
                        # Read to the end even after [DONE]: an abandoned stream generator leaks a task.
                        async for line in r.aiter_lines():
                            state.feed(line, time.monotonic())
                        state.close(time.monotonic())
            except httpx.TimeoutException:
                state.fail(f"timed out (no data for {self.options.request_timeout_s:g} s)")
            except httpx.HTTPError as exc:
                state.fail(f"broken stream: {_why(exc)}")
            except Exception as exc:  # one bad response must not lose the rest of the batch
                state.fail(f"{type(exc).__name__}: {exc}")
        return state.response(request), state

    # --- sleep (a vLLM server it starts: engines/vllm_server_sleep.py) --------------------------------

    @classmethod
    def sleep_levels(cls, config: EngineConfig) -> tuple[int, ...]:
        from joulebench.engines.vllm_server_sleep import no_sleep_problem

        return (1, 2) if no_sleep_problem(config) is None else ()

    @classmethod
    def no_sleep_reason(cls, config: EngineConfig) -> str:
        from joulebench.engines.vllm_server_sleep import no_sleep_problem

        return no_sleep_problem(config) or f"{cls.name} has no sleep mode"

    @classmethod
    def sleep_options(cls, levels: Sequence[int]) -> dict[str, Any]:
        from joulebench.engines.vllm_server_sleep import DEV_MODE_ENV

        return {"server_env": {DEV_MODE_ENV: "1"}}  # beside the user's own server_env

    def sleep(self, level: int) -> None:
        from joulebench.engines.vllm_server_sleep import sleep_calls

        for call in sleep_calls(level):
            self.post_route(call.path, query=call.query, body=call.body)

    def wake_up(self, level: int) -> None:
        from joulebench.engines.vllm_server_sleep import wake_calls

        for call in wake_calls(level):
            self.post_route(call.path, query=call.query, body=call.body)

    def post_route(
        self, path: str, *, query: Sequence[tuple[str, str]] = (), body: Mapping[str, Any] | None = None
    ) -> Any:
        """POST to one of the server's own routes (not the OpenAI API's); its JSON answer, if any. Any
        answer but 200 is an :class:`EngineError` with the server's message."""
        import httpx

        if self.served_model is None:
            raise UsageError(f"{path} before setup()")
        url = f"{self.options.root}{path}"
        try:
            # as long as a request may take: reading an 8B model's weights again is no quick answer
            answer = httpx.post(
                url,
                params=list(query),
                json=dict(body or {}),
                headers=self._headers(),
                timeout=self.options.request_timeout_s,
            )
        except httpx.HTTPError as exc:
            raise EngineError(f"{url} did not answer: {_why(exc)}") from exc
        if answer.status_code != 200:
            raise EngineError(f"{url} answered {answer.status_code}: {error_message(answer.text)}")
        try:
            return answer.json()
        except ValueError:
            return None

    # --- teardown -----------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self._loop is not None and not self._loop.is_closed():
                if self._client is not None:
                    self._loop.run_until_complete(self._client.aclose())
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.close()
        finally:
            self._client = None
            if self.server is not None:
                self.server.stop()


def _number(key: str, value: Any) -> float:
    """A float from an option value; strings such as "inf" come from ``--engine-opt`` as text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number, got {value!r}") from None


def _get(httpx: Any, url: str, headers: dict[str, str]) -> int | None:
    """The status of a GET when it is 200, 401 or 403 (a server is up), else ``None``."""
    try:
        status = httpx.get(url, headers=headers, timeout=5.0).status_code
    except httpx.HTTPError:
        return None
    # 401/403: something is up and guarding its models; the listing then says what to fix.
    return status if status in (200, 401, 403) else None


def _server_version(httpx: Any, root: str, headers: dict[str, str]) -> str | None:
    try:
        r = httpx.get(f"{root}/version", headers=headers, timeout=5.0)
        return str(r.json()["version"]) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def error_message(text: str) -> str:
    import json

    try:
        obj = json.loads(text)
        err = obj.get("error", obj)
        msg = err.get("message", err) if isinstance(err, dict) else err
        text = msg if isinstance(msg, str) else json.dumps(msg)
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:300]


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _temp_log_path() -> Path:
    # the run's log folder, kept and named at its end; a temporary file only outside a run
    folder = os.environ.get("JOULEBENCH_LOG_DIR") or None
    prefix = "server-" if folder else "joulebench-server-"
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".log", dir=folder)
    os.close(fd)
    return Path(path)

"""vLLM's own log records as stage boundaries.

vLLM loads the model, profiles memory, allocates the KV cache, compiles and captures CUDA graphs inside
``LLM(...)``, in an engine-core process and its worker processes. The only record of when each step began
and ended is vLLM's log. vLLM configures logging from the dictConfig JSON named by
``VLLM_LOGGING_CONFIG_PATH`` in every process it starts, so the adapter writes such a config that keeps
vLLM's console handler and adds :class:`StageLogHandler`, which matches records against :data:`EVENTS`.

Each matching record is appended to an events file (JSON lines: key, monotonic time, pid, seconds, message)
that the adapter reads back when ``LLM(...)`` returns or fails, and replays into its marks. Records that
state a number about the engine (:data:`FACTS`: the KV cache's size) go to the same file, for its details.
The handler does not write to ``JOULEBENCH_STAGE_FILE`` itself: the adapter's marks reach that file already
(the runner's marks write there), and two writers would report every edge twice.

Record times are wall clock (``record.created``); the handler turns them into ``time.monotonic()`` seconds
with the offset between the two clocks read when it handles the record, microseconds later.

The texts were read in vLLM 0.32's source (file:line below) and match older releases' wording too
("takes"/"took"); :func:`match_event` is the one place that knows them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joulebench.engines.base import STAGE_ENGINE_INIT, STAGE_MODEL_LOAD

# Stage names of the sub-stages taken from vLLM's log; they overlap engine_init (or model_load).
STAGE_LOAD_WEIGHTS = "load_weights"
STAGE_COMPILE = "compile"
STAGE_CUDA_GRAPHS = "cuda_graphs"
STAGE_PROFILE_KV_WARMUP = "profile_kv_warmup"


@dataclass(frozen=True)
class LogEvent:
    """One vLLM log message that marks a stage edge.

    ``edge`` says what the record's time is: ``begin`` or ``end`` of ``stage``, or ``span_end``: the end
    of ``stage`` whose duration in seconds is the message's first number (begin = time - duration).
    """

    key: str
    pattern: re.Pattern[str]
    stage: str
    edge: str  # "begin" | "end" | "span_end"
    source: str  # where vLLM 0.32 logs it


def _event(key: str, pattern: str, stage: str, edge: str, source: str) -> LogEvent:
    return LogEvent(key, re.compile(pattern), stage, edge, source)


#: The table of vLLM log messages joulebench reads.
EVENTS: tuple[LogEvent, ...] = (
    _event(
        "load_start",
        r"Starting to load model|Loading model from scratch",
        STAGE_MODEL_LOAD,
        "begin",
        "v1/worker/gpu_model_runner.py:5040, v1/worker/cpu_model_runner.py:68; the v2 GPU model runner"
        " (v1/worker/gpu/model_runner.py, the default on Hopper in 0.26) says 'Loading model from scratch'",
    ),
    _event(
        "weights_loaded",
        r"Loading weights took ([\d.]+) ?s",
        STAGE_LOAD_WEIGHTS,
        "span_end",
        "model_executor/model_loader/default_loader.py:502",
    ),
    _event(
        "load_done",
        r"Model loading took .*? and ([\d.]+) ?s",
        STAGE_MODEL_LOAD,
        "end",
        "v1/worker/gpu_model_runner.py:5150, v1/worker/gpu/model_runner.py:425 (GPU only)",
    ),
    _event(
        "compile_done",
        r"torch\.compile (?:takes|took) ([\d.]+) ?s in total",
        STAGE_COMPILE,
        "span_end",
        "compilation/monitor.py:20 (GPU, VLLM_COMPILE mode)",
    ),
    _event(
        "cpu_compile_start",
        r"Warming up model for the compilation",
        STAGE_COMPILE,
        "begin",
        "v1/worker/cpu_model_runner.py:87 (CPU)",
    ),
    _event(
        "cpu_compile_done",
        r"^Warming up done",
        STAGE_COMPILE,
        "end",
        "v1/worker/cpu_model_runner.py:91 (CPU)",
    ),
    _event(
        "graphs_done",
        r"Graph capturing finished in ([\d.]+) ?secs",
        STAGE_CUDA_GRAPHS,
        "span_end",
        "v1/worker/gpu_model_runner.py:6582 (whole seconds)",
    ),
    _event(
        "init_engine_done",
        r"init engine \(profile, create kv cache, warmup model\) (?:took|takes) ([\d.]+)",
        STAGE_PROFILE_KV_WARMUP,
        "span_end",
        "v1/engine/core.py:386-403",
    ),
)


@dataclass(frozen=True)
class LogFact:
    """One vLLM log message that states a number about the engine it built (not a stage edge)."""

    key: str
    pattern: re.Pattern[str]  # group 1: the number, thousands separated by commas
    source: str
    parse: type[int] | type[float] = float


#: What vLLM says of the KV cache it allocated: how many tokens of context it holds, and how many requests
#: of the full model length fit at once. Throughput at a large batch turns on it (an H100 holds fewer
#: 2,000-token sequences of an 8B model than an H200), and nothing else records it.
FACTS: tuple[LogFact, ...] = (
    LogFact(
        "kv_cache_tokens",
        re.compile(r"KV cache size: ([\d,]+) tokens"),
        "v1/core/kv_cache_utils.py: 'GPU KV cache size: %s tokens' (0.26), '%s KV cache size: %s tokens, "
        "Maximum concurrency ...' in one record (0.32, GPU or CPU)",
        int,
    ),
    LogFact(
        "kv_cache_max_concurrency",
        re.compile(r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x"),
        "v1/core/kv_cache_utils.py (0.26: a record of its own; 0.32: with the size)",
    ),
)


FACT_KEYS = frozenset(fact.key for fact in FACTS)


@dataclass(frozen=True)
class SeenEvent:
    """One matched record: its event (or fact) key, monotonic time, process, the duration it states, and
    for a fact its value."""

    key: str
    t_s: float
    pid: int
    seconds: float | None = None
    message: str = ""
    value: float | None = None


def match_facts(message: str) -> dict[str, float]:
    """The facts a formatted log message states (one record may state several)."""
    out = {}
    for fact in FACTS:
        m = fact.pattern.search(message)
        if m:
            out[fact.key] = fact.parse(m.group(1).replace(",", ""))
    return out


def engine_facts(events: Iterable[SeenEvent]) -> dict[str, float]:
    """The last value of each fact seen (a restarted engine core states them again)."""
    ordered = sorted(events, key=lambda e: e.t_s)
    return {e.key: e.value for e in ordered if e.key in FACT_KEYS and e.value is not None}


def match_event(message: str) -> tuple[LogEvent, float | None] | None:
    """The table row a formatted log message matches, with the seconds it states (if any)."""
    for event in EVENTS:
        m = event.pattern.search(message)
        if m:
            seconds = float(m.group(1)) if m.groups() else None
            return event, seconds
    return None


def event_by_key(key: str) -> LogEvent:
    for event in EVENTS:
        if event.key == key:
            return event
    raise KeyError(key)


class StageLogHandler(logging.Handler):
    """A logging handler for vLLM's processes: each record that matches :data:`EVENTS` is appended to
    ``events_path``. Built by ``logging.config.dictConfig`` from the adapter's config."""

    def __init__(self, events_path: str, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.events_path = events_path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            t_s = record.created - (time.time() - time.monotonic())
            seen = self.seen(record.getMessage(), t_s, record.process or os.getpid())
            if seen:
                append_line(self.events_path, "\n".join(json.dumps(e.__dict__) for e in seen))
        except Exception:  # a broken hook must never break the engine it observes
            self.handleError(record)

    def seen(self, message: str, t_s: float, pid: int) -> list[SeenEvent]:
        """The events and facts one record's message states (vLLM's table; other engines' handlers
        override it)."""
        found = match_event(message)
        seen = [
            SeenEvent(key, t_s, pid, None, message[:200], value)
            for key, value in match_facts(message).items()
        ]
        if found is not None:
            seen.append(SeenEvent(found[0].key, t_s, pid, found[1], message[:200]))
        return seen


def append_line(path: str, text: str) -> None:
    """One ``write`` in append mode, so lines from several processes never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def read_events(path: Path) -> list[SeenEvent]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        if line.strip():
            events.append(SeenEvent(**json.loads(line)))
    return events


@dataclass(frozen=True)
class StagePlan:
    """What the events say about ``LLM(...)``: the stages as ``(name, start_s, end_s)`` spans, the event
    keys seen, and the expected ones that were not."""

    spans: tuple[tuple[str, float, float], ...]
    seen: tuple[str, ...]
    missing: tuple[str, ...]
    model_load_end: str | None


def plan_stages(events: Iterable[SeenEvent], start_s: float, end_s: float, *, expect_gpu: bool) -> StagePlan:
    """Turn the events seen during ``LLM(...)`` (called at ``start_s``, returned at ``end_s``) into spans.

    ``engine_init`` is everything of ``LLM(...)`` that is not ``model_load``: it comes in two pieces, before
    the load starts and after it ends. Several processes may report an event (one per rank): a begin is
    the earliest report, an end the latest. Without a start record, the load's start is the end record's
    time less the duration vLLM states in it. Without either, ``engine_init`` is the whole call and no
    ``model_load`` is reported (nothing is guessed).
    """
    events = [e for e in events if e.key not in FACT_KEYS]
    by_key: dict[str, list[SeenEvent]] = {}
    for e in events:
        by_key.setdefault(e.key, []).append(e)

    def first(key: str) -> float | None:
        return min((e.t_s for e in by_key.get(key, ())), default=None)

    def last(key: str) -> float | None:
        return max((e.t_s for e in by_key.get(key, ())), default=None)

    spans: list[tuple[str, float, float]] = []
    load_start = first("load_start")
    load_end_key = next((k for k in ("load_done", "weights_loaded") if k in by_key), None)
    load_end = last(load_end_key) if load_end_key else None
    if load_start is None and load_end_key == "load_done":
        # vLLM times the whole load itself ("Model loading took ... and X seconds", perf_counter around
        # load_model): its own start, when the start record is missing
        stated = [e.t_s - e.seconds for e in by_key["load_done"] if e.seconds is not None]
        load_start = min(stated, default=None)
    if load_start is not None and load_end is not None and start_s <= load_start <= load_end <= end_s:
        spans += [(STAGE_ENGINE_INIT, start_s, load_start), (STAGE_MODEL_LOAD, load_start, load_end)]
        spans.append((STAGE_ENGINE_INIT, load_end, end_s))
    else:
        spans.append((STAGE_ENGINE_INIT, start_s, end_s))
        load_end_key = None

    for event in EVENTS:
        if event.edge != "span_end" or event.key not in by_key:
            continue
        reports = [e for e in by_key[event.key] if e.seconds is not None]
        if reports:
            begin = min(e.t_s - (e.seconds or 0.0) for e in reports)
            spans.append((event.stage, begin, max(e.t_s for e in reports)))
    compile_begin, compile_end = first("cpu_compile_start"), last("cpu_compile_done")
    if compile_begin is not None and compile_end is not None and compile_begin <= compile_end:
        spans.append((STAGE_COMPILE, compile_begin, compile_end))

    expected = ["load_start", "weights_loaded", "init_engine_done"]
    expected += ["load_done"] if expect_gpu else ["cpu_compile_start", "cpu_compile_done"]
    return StagePlan(
        spans=tuple(spans),
        seen=tuple(sorted(by_key)),
        missing=tuple(k for k in expected if k not in by_key),
        model_load_end=load_end_key,
    )


def logging_config(base: dict[str, Any], handler: dict[str, Any], logger: str = "vllm") -> dict[str, Any]:
    """vLLM's logging dictConfig ``base`` with the stage handler added to its ``vllm`` logger.

    The logger's level is lowered to INFO if needed (the events are INFO records) while vLLM's own
    handlers keep their level, so the console shows what it showed before.
    """
    config = json.loads(json.dumps(base))  # a deep copy that is also proof it serialises
    handlers = config.setdefault("handlers", {})
    loggers = config.setdefault("loggers", {})
    vllm_logger = loggers.setdefault(logger, {"handlers": [], "propagate": False})
    level = vllm_logger.get("level", "INFO")
    for name in vllm_logger.get("handlers", []):
        handlers.get(name, {}).setdefault("level", level)
    if logging.getLevelName(str(level).upper()) > logging.INFO:
        vllm_logger["level"] = "INFO"
    handlers["joulebench_stages"] = {**handler, "level": "INFO"}
    vllm_logger["handlers"] = [*vllm_logger.get("handlers", []), "joulebench_stages"]
    config.setdefault("version", 1)
    config.setdefault("disable_existing_loggers", False)
    return dict(config)

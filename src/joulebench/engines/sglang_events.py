"""SGLang's own log records that mark its setup, as SGLang 0.5 writes them (``model_runner.py``'s
``load_model`` and CUDA-graph capture, ``http_server.py``'s last word before it serves).

Two readers use them:

* a server started with ``--engine openai --server-cmd "python -m sglang.launch_server ..."`` (or
  ``--engine sglang-server``): :func:`sglang_log_event` reads its log lines, as the openai adapter reads a
  vLLM server's. SGLang prefixes each line with ``[%Y-%m-%d %H:%M:%S(.ms)( TPn)( DPn)]``; a pattern matches
  the message right after that prefix, wherever the prefix stands in the line.
* the offline ``sglang`` engine (``sglang.Engine``): SGLang configures logging in each of its processes
  from the dictConfig JSON named by ``SGLANG_LOGGING_CONFIG_PATH``, so the adapter gives it one with
  :class:`SGLangLogHandler`, which matches each record's message (:func:`sglang_message_event`) and
  appends it to an events file, stamped with the record's own creation time, as vLLM's handler does.

Keys are the ones the openai adapter reads for vLLM (``load_start``, ``load_done``, ``app_ready``); the
others are kept with the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from joulebench.engines.base import STAGE_ENGINE_INIT, STAGE_MODEL_LOAD
from joulebench.engines.vllm_events import STAGE_CUDA_GRAPHS, SeenEvent, StageLogHandler, StagePlan

#: key -> the start of the message (model_runner.py and http_server.py of SGLang 0.5.14)
MESSAGES: tuple[tuple[str, str], ...] = (
    ("dist_init", r"Init torch distributed begin\."),
    ("load_start", r"Load weight begin\. "),
    ("load_done", r"Load weight end\. elapsed="),
    # "Capture {role} decode {backend} begin." (CUDA graph, or the CPU and NPU runners' own names)
    ("graphs_start", r"Capture [\w ]*?(?:CUDA graph|cuda graph|graph) begin\. "),
    ("graphs_done", r"Capture [\w ]*?(?:CUDA graph|cuda graph|graph) end\. elapsed="),
    ("app_ready", r"The server is fired up and ready to roll!"),
)
IN_LINE = tuple((key, re.compile(r"\] " + text)) for key, text in MESSAGES)
AT_START = tuple((key, re.compile(text)) for key, text in MESSAGES)
ELAPSED = re.compile(r"elapsed=([\d.]+) ?s")

#: what the offline adapter expects to see on a GPU (the CPU runner captures no CUDA graphs)
EXPECTED = ("load_start", "load_done")


def sglang_log_event(text: str) -> str | None:
    """The event key of one line of an SGLang server's log, or None."""
    for key, pattern in IN_LINE:
        if pattern.search(text):
            return key
    return None


def sglang_message_event(message: str) -> str | None:
    """The event key of one log record's message (no prefix: the record as logging hands it over)."""
    for key, pattern in AT_START:
        if pattern.match(message):
            return key
    return None


class SGLangLogHandler(StageLogHandler):
    """:class:`~joulebench.engines.vllm_events.StageLogHandler` with SGLang's table: one events file that
    SGLang's scheduler, detokenizer and main process all append to."""

    def seen(self, message: str, t_s: float, pid: int) -> list[SeenEvent]:
        key = sglang_message_event(message)
        if key is None:
            return []
        m = ELAPSED.search(message)
        return [SeenEvent(key, t_s, pid, float(m.group(1)) if m else None, message[:200])]


def base_logging_config(console_level: str) -> dict[str, Any]:
    """What SGLang's own ``configure_logger`` sets up, as a dictConfig: its console format at the level it
    would log at (``Engine`` logs errors only unless given ``log_level``). The stage handler is added to
    its ``sglang`` logger by :func:`~joulebench.engines.vllm_events.logging_config`."""
    level = console_level.upper()
    if not isinstance(logging.getLevelName(level), int):
        level = "ERROR"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sglang": {"format": "[%(asctime)s] %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "sglang", "level": level}},
        "loggers": {"sglang": {"handlers": ["console"], "level": level, "propagate": False}},
        "root": {"handlers": ["console"], "level": level},
    }


def plan_stages(events: Iterable[SeenEvent], start_s: float, end_s: float, *, expect_gpu: bool) -> StagePlan:
    """The stages of ``sglang.Engine(...)`` (called at ``start_s``, returned at ``end_s``) from its records.

    As for vLLM: ``model_load`` from the first "Load weight begin." to the last "Load weight end." (one
    record per tensor-parallel rank); ``engine_init`` the rest of the call, before (process spawn,
    distributed init) and after (KV-cache allocation, CUDA-graph capture, the tokenizer manager's
    handshake); ``cuda_graphs`` overlapping it. Without both load records ``engine_init`` is the whole
    call and no ``model_load`` is reported.
    """
    by_key: dict[str, list[float]] = {}
    for e in events:
        by_key.setdefault(e.key, []).append(e.t_s)
    load_start = min(by_key.get("load_start", ()), default=None)
    load_end = max(by_key.get("load_done", ()), default=None)
    spans: list[tuple[str, float, float]] = []
    if load_start is not None and load_end is not None and start_s <= load_start <= load_end <= end_s:
        spans += [
            (STAGE_ENGINE_INIT, start_s, load_start),
            (STAGE_MODEL_LOAD, load_start, load_end),
            (STAGE_ENGINE_INIT, load_end, end_s),
        ]
        ended_by: str | None = "load_done"
    else:
        spans.append((STAGE_ENGINE_INIT, start_s, end_s))
        ended_by = None
    graphs_start = min(by_key.get("graphs_start", ()), default=None)
    graphs_end = max(by_key.get("graphs_done", ()), default=None)
    if graphs_start is not None and graphs_end is not None and graphs_start <= graphs_end:
        spans.append((STAGE_CUDA_GRAPHS, graphs_start, graphs_end))
    expected = (*EXPECTED, "graphs_start", "graphs_done") if expect_gpu else EXPECTED
    return StagePlan(
        spans=tuple(spans),
        seen=tuple(sorted(by_key)),
        missing=tuple(k for k in expected if k not in by_key),
        model_load_end=ended_by,
    )

"""The manager-worker protocol: JSON lines, one message each way per step.

Manager -> worker (the worker's stdin): first the *spec*, then commands::

    {"engine": "transformers", "engine_config": {...}, "first_token": {"request": {...}, "sampling": {...}}}
    {"cmd": "generate", "tag": "repeat-0", "requests": [...], "sampling": {...}}
    {"cmd": "close"}

Worker -> manager (a pipe named by ``--result-fd``, or stdout): events::

    {"event": "started", "pid": 123, "t_s": ...}
    {"event": "ready", "engine_info": {...}, "marks": [[name, start_s, end_s], ...], "first_token": {...}}
    {"event": "generated", "tag": "repeat-0", "begin_s": ..., "end_s": ..., "responses": [...]}
    {"event": "error", "where": "setup", "error": "RuntimeError: ..."}
    {"event": "closed"}

Times are ``time.monotonic()`` seconds (system-wide on Linux, so they line up with the manager's samples).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joulebench.engines.base import EngineConfig, EngineInfo
    from joulebench.workloads.spec import Request, Response, SamplingSpec


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, default=str, separators=(",", ":")) + "\n"


def request_to_dict(r: Request) -> dict[str, Any]:
    return asdict(r)


def request_from_dict(d: dict[str, Any]) -> Request:
    from joulebench.workloads.spec import Request

    return Request(**d)


def sampling_to_dict(s: SamplingSpec) -> dict[str, Any]:
    return asdict(s)


def sampling_from_dict(d: dict[str, Any]) -> SamplingSpec:
    from joulebench.workloads.spec import SamplingSpec

    return SamplingSpec(**d)


def response_to_dict(r: Response) -> dict[str, Any]:
    d = {f.name: getattr(r, f.name) for f in fields(r) if f.name != "text"}
    d["token_times_s"] = list(r.token_times_s)
    return d


def response_from_dict(d: dict[str, Any]) -> Response:
    from joulebench.workloads.spec import Response

    known = {f.name for f in fields(Response)}
    values = {k: v for k, v in d.items() if k in known}
    values["token_times_s"] = tuple(values.get("token_times_s") or ())
    return Response(**values)


def engine_config_to_dict(c: EngineConfig) -> dict[str, Any]:
    return asdict(c)


def engine_config_from_dict(d: dict[str, Any]) -> EngineConfig:
    from joulebench.engines.base import EngineConfig

    return EngineConfig(**d)


def engine_info_to_dict(info: EngineInfo) -> dict[str, Any]:
    return asdict(info)

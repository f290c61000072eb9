"""One setup trial: a fresh worker process from spawn to the first token, measured by the manager.

The ``setup`` window runs from just before the spawn to the first token; inside it the adapter's
``import``, ``engine_init`` and ``model_load`` marks and the worker's ``first_token`` span, plus
``spawn`` (interpreter start and joulebench's own import, before the engine is imported).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.engines.base import STAGE_FIRST_TOKEN, STAGE_IMPORT, STAGE_SETUP, EngineConfig
from joulebench.measurement.occupancy import with_held_memory
from joulebench.runner import protocol
from joulebench.runner.cache_state import (
    compile_cache_state,
    drop_page_cache,
    evict_page_cache,
    page_cache_state,
    prime_page_cache,
)
from joulebench.runner.monitoring import trace_bytes
from joulebench.runner.prepare import Prepared
from joulebench.runner.process import WorkerFailed
from joulebench.runner.ranks import worker_for
from joulebench.store.rows import StageEnergyRow, TrialRow, stage_rows
from joulebench.workloads.spec import Request, SamplingSpec

if TYPE_CHECKING:
    from joulebench.runner.monitoring import RunMonitor

STAGE_SPAWN = "spawn"


def worker_spec(
    engine: str, engine_config: EngineConfig, first_token: tuple[Request, SamplingSpec] | None = None
) -> dict[str, Any]:
    """The spec a worker starts from; with ``first_token`` it also runs that request to its first token."""
    spec: dict[str, Any] = {"engine": engine, "engine_config": protocol.engine_config_to_dict(engine_config)}
    if first_token is not None:
        spec["first_token"] = {
            "request": protocol.request_to_dict(first_token[0]),
            "sampling": protocol.sampling_to_dict(first_token[1]),
        }
    return spec


def run_setup_trial(
    p: Prepared,
    index: int,
    monitor: RunMonitor,
    *,
    log_dir: Path,
    env: dict[str, str],
    page_cache: str | None = None,
    factors: dict[str, Any] | None = None,
) -> tuple[TrialRow, list[StageEnergyRow], bytes | None]:
    """Run and measure one setup trial; a failure is returned as a ``failed`` trial, never raised.
    ``page_cache``: ``cold`` or ``warm`` to set the weights' page-cache state first (None: as it is);
    ``factors``: the setup factors' levels it was given (runner/setup_factors.py), recorded with it."""
    if p.config.drop_caches:
        drop_page_cache()
    if page_cache == "cold":
        evict_page_cache(p.model_path)
    elif page_cache == "warm":
        prime_page_cache(p.model_path)
    cache = page_cache_state(p.model_path)
    compiled = compile_cache_state(p.engine, p.engine_config.env)
    started_unix = time.time()
    spec = worker_spec(p.engine, p.engine_config, (p.requests[0], p.sampling))
    worker = worker_for(p.engine, p.engine_config, spec, log_dir=log_dir, name=f"setup-{index}", env=env)
    details: dict[str, Any] = {"page_cache": asdict(cache)}
    if factors:
        details["factors"] = factors
    spawn_s = worker.start()
    try:
        ready = worker.wait_for("ready", p.config.trial_timeout_s)
    except WorkerFailed as exc:
        end_s = time.monotonic()
        details["timed_out"] = exc.timed_out
        if exc.usage:
            details["usage_error"] = exc.usage
        trial = TrialRow(
            kind="setup",
            repeat_index=index,
            status="failed",
            started_unix_s=started_unix,
            duration_s=end_s - spawn_s,
            error=with_held_memory(str(exc), monitor.memory_mib()),  # the worker is gone by now
            cache_state=cache.state,
            compile_cache=compiled,
            details=details,
        )
        stages = stage_rows(monitor.window(STAGE_SETUP, spawn_s, end_s), flags=("failed",))
        return trial, stages, trace_bytes(monitor, spawn_s, end_s)
    except BaseException:  # Ctrl-C: no engine left behind
        worker.kill()
        raise
    worker.close(timeout_s=min(60.0, p.config.trial_timeout_s))

    marks = [(str(n), float(s), float(e)) for n, s, e in ready["marks"]]
    first = ready.get("first_token") or {}
    ft = next(((s, e) for n, s, e in marks if n == STAGE_FIRST_TOKEN), None)
    end_s = ft[1] if ft else float(ready["ready_s"])
    windows = [monitor.window(STAGE_SETUP, spawn_s, end_s)]
    import_start = next((s for n, s, _ in marks if n == STAGE_IMPORT), None)
    if import_start is not None and import_start > spawn_s:
        windows.append(monitor.window(STAGE_SPAWN, spawn_s, import_start))
    # A mark pair out of order (an engine log clock hiccup) is kept in details, not turned into a window.
    windows += [monitor.window(n, s, e) for n, s, e in marks if e >= s]
    stages = [row for w in windows for row in stage_rows(w)]
    details.update(
        engine_info=ready.get("engine_info"),
        marks=marks,
        spawn_s=spawn_s,
        worker_start_s=worker.started_s,
        ready_s=ready.get("ready_s"),
        first_token=first,
    )
    trial = TrialRow(
        kind="setup",
        repeat_index=index,
        status="ok",
        started_unix_s=started_unix,
        duration_s=end_s - spawn_s,
        cache_state=cache.state,
        compile_cache=compiled,
        n_requests=1,
        prompt_tokens=p.requests[0].prompt_tokens,
        output_tokens=first.get("output_tokens"),
        details=details,
    )
    return trial, stages, trace_bytes(monitor, spawn_s, end_s)

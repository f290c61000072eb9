"""How long a sweep will take: from earlier runs of the same engine/model/workload when the database has
them, else from fixed defaults (documented in docs/sweeps.md). An estimate, shown before a long sweep so
that a user can trim the plan; never used for a result."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from joulebench.runner.config import RunConfig
from joulebench.sweep.stored import workload_columns
from joulebench.workloads.presets import PRESETS

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

# Defaults when the database knows nothing: seconds for one setup trial (fresh process to first token)
# and for one token-generation repeat. Engines that compile or capture graphs at start take longer.
DEFAULT_SETUP_S = 30.0
ENGINE_SETUP_S = {"vllm": 90.0, "tensorrt-llm": 120.0, "deepspeed": 45.0}
DEFAULT_GENERATE_S = 20.0


@dataclass(frozen=True)
class TrialTimes:
    setup_s: float  # one setup trial
    generate_s: float  # one token-generation repeat
    source: str  # "history" (median of earlier trials) or "default"


@dataclass(frozen=True)
class CellEstimate:
    duration_s: float
    source: str


def trial_times(db: ResultsDB | None, config: RunConfig) -> TrialTimes:
    setup = _median(db, config, "setup")
    generate = _median(db, config, "generation")
    default_setup = ENGINE_SETUP_S.get(config.engine, DEFAULT_SETUP_S)
    source = "history" if setup is not None or generate is not None else "default"
    return TrialTimes(
        setup_s=setup if setup is not None else default_setup,
        generate_s=generate if generate is not None else DEFAULT_GENERATE_S,
        source=source,
    )


def cell_estimate(times: TrialTimes, config: RunConfig, engine_start: bool) -> CellEstimate:
    """``engine_start``: this cell is the first of its group, so it pays the engine start the group's
    generation trials share."""
    generations = float(config.repeats + config.unmonitored_repeats)
    if config.warmup:
        # a warm-up cut short takes about its share of the measured output
        preset = PRESETS.get(config.workload)
        full = config.output_tokens or (preset.output_tokens if preset else None)
        cut = config.warmup_tokens
        generations += min(1.0, cut / full) if cut is not None and full else 1.0
    duration = config.setup_repeats * times.setup_s + generations * times.generate_s + config.idle_s
    if engine_start:
        duration += times.setup_s
    return CellEstimate(duration_s=duration, source=times.source)


def _median(db: ResultsDB | None, config: RunConfig, kind: str) -> float | None:
    if db is None:
        return None
    values = [
        float(t["duration_s"])
        for run in db.runs(engine=config.engine, model=config.model, **_history_columns(config))
        for t in db.trials(run["id"], kind)
        if t["status"] == "ok" and t["duration_s"] is not None
    ]
    return statistics.median(values) if values else None


def _history_columns(config: RunConfig) -> dict[str, object]:
    """Match the workload's name and shape, so that a batch of 8 is not timed by earlier batches of 256."""
    columns = workload_columns(config)
    return {k: columns[k] for k in ("workload", "batch_size", "output_tokens")}


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"

"""How long a sweep will take, from the closest earlier trials the database has: the same cell (its sweep
key, which survives a moved model folder), else the same engine, variant, model and workload shape, else the
same engine, variant and model at other shapes, scaled by the tokens a repeat generates; else fixed defaults
(documented in docs/sweeps.md). An estimate, shown before a long sweep so that a user can trim the plan or
size a machine booking; never used for a result."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    source: str  # "history" (earlier trials of this cell or shape), "scaled" (other shapes) or "default"


@dataclass(frozen=True)
class CellEstimate:
    duration_s: float
    source: str


def trial_times(db: ResultsDB | None, config: RunConfig) -> TrialTimes:
    runs = _EarlierRuns(db, config)
    # Setup does not depend on the workload: any earlier run of the engine and model times it.
    setup = _median(db, runs.same_cell(), "setup")
    if setup is None:
        setup = _median(db, runs.same_model(), "setup")
    generate = _median(db, runs.same_cell(), "generation")
    if generate is None:
        generate = _median(db, runs.same_shape(), "generation")
    source = "history"
    if generate is None:
        tokens = _cell_tokens(config)
        # Seconds per generated token at other shapes, times this shape's tokens: a batch of 256 x 2,000 is
        # not timed as one of 128 x 500 (the per-token time itself grows with the KV cache, so this is low).
        generate = _median(db, runs.same_model(), "generation", lambda t: _per_token(t, tokens))
        source = "scaled" if generate is not None else "history" if setup is not None else "default"
    return TrialTimes(
        setup_s=setup if setup is not None else ENGINE_SETUP_S.get(config.engine, DEFAULT_SETUP_S),
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


class _EarlierRuns:
    """The database's runs of this configuration, from the closest match to the loosest."""

    def __init__(self, db: ResultsDB | None, config: RunConfig) -> None:
        self._db, self._config = db, config

    def same_cell(self) -> list[dict[str, Any]]:
        if self._db is None or self._config.sweep_key is None:
            return []
        return self._db.runs(sweep_key=self._config.sweep_key)

    def same_shape(self) -> list[dict[str, Any]]:
        """Same workload name and shape, so that a batch of 8 is not timed by earlier batches of 256."""
        columns = workload_columns(self._config)
        return self._of_model(**{k: columns[k] for k in ("workload", "batch_size", "output_tokens")})

    def same_model(self) -> list[dict[str, Any]]:
        return self._of_model()

    def _of_model(self, **where: object) -> list[dict[str, Any]]:
        if self._db is None:
            return []
        c = self._config
        if c.device != "auto":  # runs store the device that "auto" resolved to
            where["device"] = c.device
        runs = self._db.runs(engine=c.engine, model=c.model, tensor_parallel=c.tensor_parallel, **where)
        # A plan's variants of one engine (compiled, eager) share its name but not its speed.
        return [r for r in runs if _label(r) == c.label]


def _label(run: dict[str, Any]) -> str | None:
    return (run.get("config") or {}).get("label")


def _per_token(trial: dict[str, Any], tokens: float) -> float | None:
    return tokens / trial["output_tokens"] if trial["output_tokens"] else None


def _cell_tokens(config: RunConfig) -> float:
    columns = workload_columns(config)
    return float(columns["batch_size"] * columns["output_tokens"])


def _median(
    db: ResultsDB | None,
    runs: list[dict[str, Any]],
    kind: str,
    scale: Callable[[dict[str, Any]], float | None] = lambda trial: 1.0,
) -> float | None:
    """The median ok trial of ``kind`` in ``runs``, its duration times ``scale(trial)`` (None: left out)."""
    if db is None:
        return None
    values = []
    for run in runs:
        for trial in db.trials(run["id"], kind):
            factor = scale(trial) if trial["status"] == "ok" and trial["duration_s"] is not None else None
            if factor is not None:
                values.append(float(trial["duration_s"]) * factor)
    return statistics.median(values) if values else None


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"

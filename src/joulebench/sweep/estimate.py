"""How long a sweep will take, from the closest earlier trials the database has: the same cell (its sweep
key, which survives a moved model folder; its repeats, else its full-length warm-ups), else the same engine,
variant, model and workload shape, else the same engine, variant and model at other shapes, scaled by the
tokens a repeat generates; else fixed defaults (documented in docs/sweeps.md). An estimate, shown before a
long sweep so that a user can trim the plan or size a machine booking; never used for a result."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joulebench.engines.base import STAGE_SLEEP_ENTER, STAGE_WAKE
from joulebench.runner.config import RunConfig
from joulebench.sweep.stored import workload_columns
from joulebench.workloads.presets import PRESETS

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

# Defaults when the database knows nothing: seconds for one setup trial (fresh process to first token)
# and for one token-generation repeat. Engines that compile or capture graphs at start take longer.
DEFAULT_GENERATE_S = 20.0
# On a GPU a repeat is timed by its tokens at the engine's typical rate (``Engine.typical_gpu_tokens_per_s``),
# and never below DEFAULT_GENERATE_S: a batch of 256 x 2,000 is not 20 s. The rates sit below the slowest
# one-GPU cells of the H100 study (vLLM 10,528 tokens/s at 8B 256 x 2,000; Transformers and DeepSpeed 1,405
# at 3B 256 x 2,000), so that a booking sized by them is long enough. A CPU's speed varies too much with the
# model for any rate: it keeps the flat default. A setup's first guess is ``Engine.typical_setup_s``.


@dataclass(frozen=True)
class TrialTimes:
    setup_s: float  # one setup trial
    generate_s: float  # one token-generation repeat
    source: str  # "history" (earlier trials of this cell or shape), "scaled" (other shapes) or "default"
    # by sleep level, a sleep trial's time besides its hold (the sleep and wake calls), where the cell or
    # its model has one
    transition_s: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CellEstimate:
    duration_s: float
    source: str


def trial_times(db: ResultsDB | None, config: RunConfig) -> TrialTimes:
    cell, model = _runs_of_cell(db, config), _runs_of_model(db, config)
    shape = workload_columns(config)
    # Setup does not depend on the workload: any earlier run of the engine and model times it.
    setup = _median(db, cell, "setup")
    if setup is None:
        setup = _median(db, model, "setup")
    generate = _median(db, cell, "generation")
    if generate is None:
        # a run of the cell cut off in its first repeat left its warm-up: the same batch, a little slower
        full = [r for r in cell if not (r.get("config") or {}).get("warmup_tokens")]
        generate = _median(db, full, "warmup")
    if generate is None:
        # same workload name and shape, so that a batch of 8 is not timed by earlier batches of 256
        same = [
            r for r in model if all(r[k] == shape[k] for k in ("workload", "batch_size", "output_tokens"))
        ]
        generate = _median(db, same, "generation")
    source = "history"
    tokens = float(shape["batch_size"] * shape["output_tokens"])
    if generate is None:
        # Seconds per generated token at other shapes, times this shape's tokens: a batch of 256 x 2,000 is
        # not timed as one of 128 x 500 (the per-token time itself grows with the KV cache, so this is low).
        generate = _median(db, model, "generation", lambda t: _per_token(t, tokens))
        source = "scaled" if generate is not None else "history" if setup is not None else "default"
    return TrialTimes(
        setup_s=setup if setup is not None else _engine(config).typical_setup_s,
        generate_s=generate if generate is not None else _default_generate_s(config, tokens),
        source=source,
        transition_s=_transitions(db, cell, model, config.sleep_levels),
    )


def _transitions(
    db: ResultsDB | None, cell: list[dict[str, Any]], model: list[dict[str, Any]], levels: Sequence[int]
) -> Mapping[int, float]:
    """By sleep level, the median time an earlier ok sleep trial took to fall asleep and wake, from the
    cell's runs, else its model's (the wake does not depend on the workload)."""
    out: dict[int, float] = {}
    for level in levels:
        for runs in (cell, model):
            found = _sleep_transitions(db, runs, level)
            if found:
                out[level] = statistics.median(found)
                break
    return out


def _sleep_transitions(db: ResultsDB | None, runs: list[dict[str, Any]], level: int) -> list[float]:
    if db is None:
        return []
    found = (_calls_s(trial, level) for run in runs for trial in db.trials(run["id"], "sleep"))
    return [value for value in found if value is not None]


def _calls_s(trial: dict[str, Any], level: int) -> float | None:
    """An ok sleep trial's sleep and wake calls, in seconds, if it was of ``level``."""
    details = trial.get("details") or {}
    if trial["status"] != "ok" or details.get("level") != level:
        return None
    latency = details.get("latency_s") or {}
    asleep, woken = latency.get(STAGE_SLEEP_ENTER), latency.get(STAGE_WAKE)
    return None if asleep is None or woken is None else float(asleep) + float(woken)


def _engine(config: RunConfig) -> Any:
    from joulebench.engines.registry import get_engine_class

    return get_engine_class(config.engine)


def _default_generate_s(config: RunConfig, tokens: float) -> float:
    if config.device == "cpu":
        return DEFAULT_GENERATE_S
    rate = float(_engine(config).typical_gpu_tokens_per_s)
    return max(DEFAULT_GENERATE_S, tokens / rate)


def cell_estimate(times: TrialTimes, config: RunConfig, engine_start: bool) -> CellEstimate:
    """``engine_start``: this cell is the first of its group, so it pays the engine start the group's
    generation trials share. The sum of its :func:`steps`."""
    duration = sum(step.duration_s for step in steps(config, times, engine_start))
    return CellEstimate(duration_s=duration, source=times.source)


@dataclass(frozen=True)
class Step:
    duration_s: float  # what the trial is estimated to take
    expect_s: float  # what the runner expects of it before it starts: what must fit the time left


def steps(config: RunConfig, times: TrialTimes, engine_start: bool) -> list[Step]:
    """A cell's trials in the order the runner makes them, the idle baseline with the first: what each is
    estimated to take, and what the runner expects of it before it starts (runner/deadline.py; the time
    limit's dry run plays them out, sweep/fit.py)."""
    out = [Step(times.setup_s, times.setup_s) for _ in range(config.setup_trials)]
    start_s = times.setup_s if engine_start else 0.0
    for k in range(config.repeats + config.unmonitored_repeats):
        if k:
            out.append(Step(times.generate_s, times.generate_s))
            continue
        # the first brings the engine start (the first cell of an engine start) and the warm-up, which
        # the runner expects to take a whole repeat even when it is cut short
        duration = start_s + (1 + warmup_share(config)) * times.generate_s
        out.append(Step(duration, start_s + (2 if config.warmup else 1) * times.generate_s))
    slept: set[int] = set()
    for _ in range(config.lifecycle_cycles):
        out.append(Step(config.park_s, config.park_s))
        for level in config.sleep_levels:
            calls = times.transition_s.get(level)
            duration = config.park_s + (calls or 0.0)
            # a level that no earlier sleep timed is expected, the first time, to cost a whole setup
            untimed = level not in slept and calls is None
            out.append(Step(duration, config.park_s + times.setup_s if untimed else duration))
            slept.add(level)
    head = out[0] if out else Step(0.0, 0.0)
    return [Step(config.idle_s + head.duration_s, config.idle_s + head.expect_s), *out[1:]]


def pace_left_s(
    estimate_s: Mapping[str, float], done: Sequence[str], todo: Sequence[str], elapsed_s: float
) -> float | None:
    """What the cells in ``todo`` should still take: their estimates at the pace the finished ones kept
    against theirs (``elapsed_s`` over their estimates), so that a slow engine or a fast machine corrects
    the defaults; ``None`` before any finished cell had an estimate."""
    done_s = sum(estimate_s[k] for k in done)
    if done_s <= 0 or elapsed_s <= 0:
        return None
    return sum(estimate_s[k] for k in todo) * elapsed_s / done_s


def warmup_share(config: RunConfig) -> float:
    """The warm-up batch, as a share of a repeat: a warm-up cut short takes about its share of the
    measured output."""
    if not config.warmup:
        return 0.0
    preset = PRESETS.get(config.workload)
    full = config.output_tokens or (preset.output_tokens if preset else None)
    cut = config.warmup_tokens
    return min(1.0, cut / full) if cut is not None and full else 1.0


def _runs_of_cell(db: ResultsDB | None, config: RunConfig) -> list[dict[str, Any]]:
    """Earlier runs of this very cell (its sweep key survives a moved model folder)."""
    if db is None or config.sweep_key is None:
        return []
    return db.runs(sweep_key=config.sweep_key)


def _runs_of_model(db: ResultsDB | None, config: RunConfig) -> list[dict[str, Any]]:
    """Earlier runs of the engine, variant and model on the same device and tensor parallelism."""
    if db is None:
        return []
    where: dict[str, object] = {
        "engine": config.engine,
        "model": config.model,
        "tensor_parallel": config.tensor_parallel,
    }
    if config.device != "auto":  # runs store the device that "auto" resolved to
        where["device"] = config.device
    # A plan's variants of one engine (compiled, eager) share its name but not its speed.
    return [r for r in db.runs(where) if (r.get("config") or {}).get("label") == config.label]


def _per_token(trial: dict[str, Any], tokens: float) -> float | None:
    return tokens / trial["output_tokens"] if trial["output_tokens"] else None


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

"""What a sweep under ``--time-limit`` would run, by the estimates: the runner's own rule
(runner/deadline.py) played out trial by trial, so that ``--dry-run --time-limit`` says what the sweep will
do. A trial starts only if what is expected of it fits the time left, and then takes its estimate; a run
stops at its first trial that does not fit, its engine start's later cells are not begun, and the sweep
goes on with the next engine start whose first trial fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from joulebench.runner.config import RunConfig
from joulebench.sweep.cells import Group
from joulebench.sweep.estimate import TrialTimes, warmup_share

WHOLE = "pending"  # run whole within the limit
IN_PART = "partial"  # begun, stopped at the limit: --resume runs the rest
LATER = "later"  # not begun


@dataclass(frozen=True)
class Step:
    duration_s: float  # what the trial is estimated to take
    expect_s: float  # what the runner expects of it before it starts: what must fit the time left


@dataclass(frozen=True)
class Fit:
    states: Mapping[str, str]  # by cell key: WHOLE, IN_PART or LATER
    used_s: float


def steps(config: RunConfig, times: TrialTimes, engine_start: bool) -> list[Step]:
    """A cell's trials in the order the runner makes them; the idle baseline goes with the first. They
    add up to the cell's estimate (sweep/estimate.py)."""
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
            first = level not in slept and calls is None
            out.append(Step(duration, config.park_s + times.setup_s if first else duration))
            slept.add(level)
    if out:
        out[0] = Step(config.idle_s + out[0].duration_s, config.idle_s + out[0].expect_s)
    return out


def within_limit(
    groups: Sequence[Group], times: Mapping[str, TrialTimes], first_of_group: set[str], limit_s: float
) -> Fit:
    left_s, states = limit_s, {}
    for group in groups:
        stopped = False
        for cell in group.cells:
            if stopped:
                states[cell.key] = LATER
                continue
            plan = steps(cell.config, times[cell.key], cell.key in first_of_group)
            made = 0
            for step in plan:
                if step.expect_s > left_s:
                    break
                left_s -= step.duration_s
                made += 1
            if made < len(plan):
                stopped = True
            states[cell.key] = WHOLE if made == len(plan) else IN_PART if made else LATER
    return Fit(states, limit_s - left_s)

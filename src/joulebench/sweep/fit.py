"""What a sweep under ``--time-limit`` would run, by the estimates: the runner's own rule
(runner/deadline.py) played out trial by trial, so that ``--dry-run --time-limit`` says what the sweep will
do. A trial starts only if what is expected of it fits the time left, and then takes its estimate; a run
stops at its first trial that does not fit, its engine start's later cells are not begun, and the sweep
goes on with the next engine start whose first trial fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from joulebench.sweep.cells import Group
from joulebench.sweep.estimate import TrialTimes, steps

WHOLE = "pending"  # run whole within the limit
IN_PART = "partial"  # begun, stopped at the limit: --resume runs the rest
LATER = "later"  # not begun


@dataclass(frozen=True)
class Fit:
    states: Mapping[str, str]  # by cell key: WHOLE, IN_PART or LATER
    used_s: float


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

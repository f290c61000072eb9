"""A value that changes in steps over time (a GPU's power, its utilisation): what the fake devices are made
of, so that a test knows the exact energy between any two instants."""

from __future__ import annotations

from collections.abc import Sequence

#: a constant, or steps ``[(t_from_s, value), ...]`` in seconds after the fake's start
Schedule = float | Sequence[tuple[float, float]]


def steps_of(schedule: Schedule) -> list[tuple[float, float]]:
    """The steps of ``schedule``, sorted, the first at 0 s."""
    if isinstance(schedule, (int, float)):
        return [(0.0, float(schedule))]
    steps = sorted((float(t), float(v)) for t, v in schedule)
    if not steps or steps[0][0] > 0.0:
        steps.insert(0, (0.0, steps[0][1] if steps else 0.0))
    return steps


def value_at(steps: list[tuple[float, float]], t_rel: float) -> float:
    value = steps[0][1]
    for t_from, v in steps:
        if t_from <= t_rel:
            value = v
    return value


def integral(steps: list[tuple[float, float]], a_rel: float, b_rel: float) -> float:
    """The exact integral between two instants (watts -> joules)."""
    if b_rel <= a_rel:
        return 0.0
    total = 0.0
    for k, (t_from, v) in enumerate(steps):
        t_to = steps[k + 1][0] if k + 1 < len(steps) else float("inf")
        lo, hi = max(a_rel, t_from), min(b_rel, t_to)
        if hi > lo:
            total += v * (hi - lo)
    return total

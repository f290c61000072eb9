"""Power traces of exactly known energy, and the counters and readings a device would show of them.

A trace is piecewise-constant power. A counter updates every ``period_s`` from ``phase_s`` on and
publishes at each update the energy up to it, floored to its resolution, as raw units that wrap at
``max_range`` and restart from 0 at a reset. Reads see the latest update. Nothing here uses joulebench's
own accounting: the true energy of a window is the integral of the steps.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PowerTrace:
    """``steps[k] = (t_from_s, watts)``, the first at 0; the last runs to infinity."""

    steps: tuple[tuple[float, float], ...]

    def power_at(self, t_s: float) -> float:
        k = bisect_right([t for t, _ in self.steps], t_s) - 1
        return self.steps[max(k, 0)][1]

    def energy(self, a_s: float, b_s: float) -> float:
        """Exact joules in ``[a_s, b_s]`` (0 before the trace starts)."""
        if b_s <= a_s:
            return 0.0
        total = 0.0
        for k, (t_from, watts) in enumerate(self.steps):
            t_to = self.steps[k + 1][0] if k + 1 < len(self.steps) else math.inf
            lo, hi = max(a_s, t_from, 0.0), min(b_s, t_to)
            if hi > lo:
                total += watts * (hi - lo)
        return total


@dataclass
class Counter:
    """A device's cumulative energy counter as read, raw units of ``unit_j`` joules."""

    trace: PowerTrace
    period_s: float
    phase_s: float = 0.0  # the first update after 0 is at phase_s (< period_s)
    unit_j: float = 1e-6
    max_range: int | None = None  # raw units; None: never wraps
    start_raw: int = 0
    reset_at_s: float | None = None  # the counter restarts from 0 here (a driver reload)
    resets_seen: list[float] = field(default_factory=list)

    def last_update(self, t_s: float) -> float:
        return self.phase_s + math.floor((t_s - self.phase_s) / self.period_s + 1e-12) * self.period_s

    def raw_at(self, t_s: float) -> int:
        """The raw value a read at ``t_s`` returns."""
        u = self.last_update(t_s)
        if self.reset_at_s is not None and u >= self.reset_at_s:
            joules = self.trace.energy(self.reset_at_s, u)
            raw = math.floor(joules / self.unit_j + 1e-9)
        else:
            raw = self.start_raw + math.floor(self.trace.energy(0.0, u) / self.unit_j + 1e-9)
        return raw % self.max_range if self.max_range else raw

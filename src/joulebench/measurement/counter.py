"""Cumulative energy counters: what a run of reads proves, and a window's energy with its bound.

The rule (docs/counters.md, with a figure):

* A counter that updates every ``P`` seconds publishes, at each update, the energy of the span since its
  previous update. An update is seen at the first read that shows the new value, so it lies between that
  read (``hi``) and the last read that still showed the old value (``lo``). Both reads are kept: a run of
  equal reads is summarised by its first and last read, never dropped.
* When reads keep showing one value for longer than ``P``, the counter held: the updates in between
  published nothing, so an increment's energy comes from at most one period before the update that
  published it. Nothing is extrapolated past the last update or before the first read.
* A window's energy counts each increment over the span it covers, clipped to the window. Its uncertainty
  is what the reads cannot rule out: every increment whose possible span holds a window edge may lie
  wholly on either side of it, plus the counter's resolution at each edge, plus a generous maximum power
  over any stretch the counter did not cover (before the first read, after the last update, a reset gap).
* A drop is a wrap only when ``max_range - last + raw`` fits the maximum power over the read interval;
  otherwise it is a reset: counting continues from the last value and the windows over it are flagged.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

RESET = "counter-reset"


class CounterSeries:
    """One cumulative counter (joules, unwrapped): each value's first read, the last read before it, and
    the latest read. Memory is 24 bytes a change, whatever the read rate."""

    def __init__(self) -> None:
        self.t_s = array("d")  # first read that showed each value (the first read for index 0)
        self.before_s = array("d")  # last read that still showed the previous value (= t_s[0] for index 0)
        self.energy_j = array("d")
        self.resets: set[int] = set()  # indices whose increment follows a counter reset
        self.last_read_s: float | None = None

    def add(self, t_s: float, energy_j: float, reset: bool = False) -> None:
        last = self.last_read_s
        if last is not None and t_s < last:
            return  # a late read from a slower thread must not bend the counter back in time
        self.last_read_s = t_s
        n = len(self.t_s)
        if n and energy_j == self.energy_j[-1] and not reset:
            return  # a repeat: its only news is that the counter held until now (last_read_s)
        if n and t_s == self.t_s[-1]:
            self.energy_j[-1] = energy_j  # two values at one instant: the later read wins (no 0 s segment)
            if reset:
                self.resets.add(n - 1)
            return
        self.t_s.append(t_s)
        self.before_s.append(last if (n and last is not None) else t_s)
        self.energy_j.append(energy_j)
        if reset and n:
            self.resets.add(n)

    def __len__(self) -> int:
        return len(self.t_s)

    def reads(self, i: int = 0, j: int | None = None) -> list[tuple[float, float, bool]]:
        """``(t_s, energy_j, reset)`` of the reads that rebuild values ``i`` to ``j - 1`` exactly: each
        value's first read, the last read before it where that was another read, and (when ``j`` reaches
        the end) the latest read."""
        n = len(self.t_s)
        j = n if j is None else min(j, n)
        out: list[tuple[float, float, bool]] = []
        for k in range(max(i, 0), j):
            if k and (k == i or self.before_s[k] > self.t_s[k - 1]):
                out.append((self.before_s[k], self.energy_j[k - 1], False))
            out.append((self.t_s[k], self.energy_j[k], k in self.resets))
        if j == n and n and self.last_read_s is not None and self.last_read_s > self.t_s[-1]:
            out.append((self.last_read_s, self.energy_j[-1], False))
        return out


@dataclass(frozen=True)
class CounterWindow:
    """A counter's energy inside one window and what bounds its error."""

    energy_j: float
    uncertainty_j: float | None  # None: the window reaches where no read covers and no power bounds it
    outside_s: float  # how far the window reaches beyond the reads
    reset: bool  # a counter reset lies inside the window
    uncovered_s: float = 0.0  # how much of the window no published increment covers


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def counter_window(
    series: CounterSeries,
    start_s: float,
    end_s: float,
    *,
    period_s: float,
    resolution_j: float = 0.0,
    max_power_w: float = 0.0,
) -> CounterWindow | None:
    """Energy of ``series`` inside ``[start_s, end_s]`` by the rule above; ``None`` with no read at all."""
    ts, bs, es = series.t_s, series.before_s, series.energy_j
    n = len(ts)
    last_read = max(series.last_read_s if series.last_read_s is not None else ts[-1], ts[-1]) if n else 0.0
    if n == 0 or (n == 1 and last_read == ts[0]):
        return None  # one read says nothing about any window
    p = max(period_s, 0.0)

    def last_update(k: int) -> float:
        # the last update before ts[k] lies in (max(bs[k], ts[k] - P), ts[k]]: take the middle
        return ts[k] - min(p, ts[k] - bs[k]) / 2

    def earliest_update(k: int) -> float:
        return max(bs[k], ts[k] - p) if k else ts[0] - p

    energy = 0.0
    uncertainty = 0.0
    reset = False
    k_lo = max(1, bisect_left(ts, start_s))
    k_hi = min(n - 1, bisect_right(ts, end_s) + 1)
    for k in range(k_lo, k_hi + 1):
        lo, hi = bs[k], ts[k]
        delta = es[k] - es[k - 1]
        first = lo + min(p, hi - lo) / 2  # the first update after lo
        span_end = last_update(k)
        span_start = min(max(last_update(k - 1) if k > 1 else -math.inf, first - p), span_end)
        # where the increment's energy can have come from: after the previous update, and (the counter
        # having held at lo) no earlier than one period before lo
        origin_lo = max(earliest_update(k - 1), lo - p)
        if span_end > span_start:
            inside = _overlap(span_start, span_end, start_s, end_s) / (span_end - span_start)
        else:
            inside = 1.0 if start_s <= span_end <= end_s else 0.0
        energy += inside * delta
        if origin_lo < start_s < hi or origin_lo < end_s < hi:
            uncertainty += _edge_error(delta, inside, origin_lo, hi, start_s, end_s, max_power_w)
        if k in series.resets and _overlap(origin_lo, hi, start_s, end_s) > 0:
            # what the counter lost: whatever was spent since the update before the reset
            reset = True
            uncertainty += max_power_w * _overlap(origin_lo, hi, start_s, end_s)
    # what no read covers: before the first read, and after the last published update
    head = max(0.0, min(end_s, ts[0]) - start_s)
    # the counter has published at least up to its last update: one period before the last read, or the
    # earliest the update of its last change can have been; what was spent after waits for the next one
    published_to = max(last_read - p, earliest_update(n - 1))
    tail = max(0.0, end_s - max(published_to, start_s))
    uncovered = head + tail
    bound: float | None = uncertainty + max_power_w * uncovered + 2 * resolution_j
    if uncovered > 0 and max_power_w <= 0:
        bound = None  # energy nothing covers, and no power limit to bound it: no bound can be stated
    outside = max(ts[0] - start_s, end_s - last_read, 0.0)
    return CounterWindow(energy, bound, outside, reset, uncovered)


def _edge_error(
    delta: float,
    inside: float,
    origin_lo: float,
    origin_hi: float,
    start_s: float,
    end_s: float,
    max_w: float,
) -> float:
    """How far the estimated share ``inside * delta`` of an increment that a window edge cuts can be from
    its true share: anything from none to all of it, unless the maximum power caps how much of it fits
    in the part of its possible origin inside (or outside) the window."""
    amount = abs(delta)
    low, high = 0.0, amount
    if max_w > 0:
        in_s = _overlap(origin_lo, origin_hi, start_s, end_s)
        out_s = (origin_hi - origin_lo) - in_s
        low, high = max(0.0, amount - max_w * out_s), min(amount, max_w * in_s)
    share = inside * amount
    return max(share - low, high - share, 0.0)


class Unwrapper:
    """Turns a raw counter that wraps at ``max_range`` (raw units; ``None``: never wraps) into joules,
    telling a wrap from a reset by the energy the drop would imply."""

    def __init__(self, scale_j: float, max_range: int | None, max_power_w: float) -> None:
        self.scale_j = scale_j
        self.max_range = max_range
        self.max_power_w = max_power_w
        self._last: tuple[float, float] | None = None  # (raw, t_s) of the last read
        self._offset = 0.0  # raw units added to every later raw value
        self.wraps = 0
        self.resets = 0

    def update(self, raw: float, t_s: float, period_s: float = 0.0) -> tuple[float, bool]:
        """``(joules, reset)`` for a raw value read at ``t_s`` of a counter that updates every
        ``period_s``: one step can publish up to a period more than the time between the reads."""
        reset = False
        if self._last is not None and raw < self._last[0]:
            last_raw, last_t = self._last
            dt = max(t_s - last_t, 0.0) + period_s
            if self.max_range and (self.max_range - last_raw + raw) * self.scale_j <= self.max_power_w * dt:
                self._offset += self.max_range
                self.wraps += 1
            else:
                self._offset += last_raw - raw  # counting continues from the last value
                self.resets += 1
                reset = True
        self._last = (raw, t_s)
        return (raw + self._offset) * self.scale_j, reset


@dataclass(frozen=True)
class PeriodEstimate:
    """A counter's update period as measured at start, or the nominal one where it could not be."""

    period_s: float
    measured: bool
    changes: int


def measure_period(
    read: Callable[[], Iterable[tuple[str, float, float]]],
    nominal_s: float,
    *,
    budget_s: float = 1.0,
    changes_wanted: int = 4,
    pause_s: float = 0.0005,
) -> PeriodEstimate:
    """Read ``read()`` (``(key, t_s, energy_j)`` per device) in a loop for at most ``budget_s`` of wall
    time and return an upper estimate of the update period: the median time between changes plus the
    median read gap, the largest over the devices that changed often enough. Where none did, the counter
    is slower than the budget shows or idle: the budget itself stands in (never the nominal period, which
    a slow counter would make unsound), unless the clock never moved (a test's manual clock)."""
    changes: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    stamps: list[float] = []
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        for key, t_s, energy in read():
            stamps.append(t_s)
            if key in last and energy != last[key]:
                changes.setdefault(key, []).append(t_s)
            last[key] = energy
        # one device is enough: the period is the driver's; a zone that never moves must not hold us
        if any(len(v) > changes_wanted for v in changes.values()):
            break
        if len(stamps) >= 20 and stamps[-1] == stamps[0]:
            break  # a clock that does not move (a test's manual clock): nothing to measure
        time.sleep(pause_s)
    gaps = [b - a for a, b in itertools.pairwise(stamps) if b > a]
    periods = []
    for times in changes.values():
        steps = [b - a for a, b in itertools.pairwise(times) if b > a]
        if len(steps) >= 2:
            periods.append(statistics.median(steps))
    if not periods:
        frozen = not stamps or stamps[-1] == stamps[0]
        fallback = nominal_s if frozen else max(nominal_s, budget_s)
        return PeriodEstimate(fallback, False, sum(len(v) for v in changes.values()))
    read_gap = statistics.median(gaps) if gaps else 0.0
    return PeriodEstimate(max(periods) + read_gap, True, min(len(v) for v in changes.values()))

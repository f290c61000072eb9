"""Where readings are kept during a measurement, with bounded memory.

* Energy counters keep, for each value, its first read and the last read before it that still showed
  the previous value (:class:`~joulebench.measurement.counter.CounterSeries`): a run of repeated reads is
  evidence of when the counter updated and that it held, and those two reads carry all of it. 24 bytes a
  change, kept for the whole measurement: about 0.9 MB per device per hour at 100 ms.
* Power timelines are bounded: at most ``max_points`` points per device (default 100 000, 2.4 MB).
  When full, adjacent pairs are merged (mean time, mean power, max of the peaks), so the timeline always
  covers the whole measurement and its resolution halves instead of its oldest part being dropped. An
  hour at 20 ms (180 000 reads) ends at a resolution of 40 ms; integrals are unchanged by a merge up to
  the trapezoid error, and peaks are kept exactly.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from joulebench.measurement.counter import CounterSeries
from joulebench.measurement.records import Component, Reading

DEFAULT_MAX_POWER_POINTS = 100_000


@dataclass(frozen=True)
class SourceMeta:
    """What accounting needs to know about the source behind a channel."""

    name: str
    interval_s: float
    counter_period_s: float | None = None  # measured at start where ``period_measured``
    power_interval_s: float | None = None
    estimated: bool = False
    max_power_w: float | None = None  # a generous bound of one device's power, for gaps nothing covers
    resolution_j: float | None = None  # the counter's smallest step
    power_resolution_w: float | None = None  # a power reading's smallest step (IPMI: 1 W)
    period_measured: bool | None = None  # None: not known (a trace written before periods were measured)


class PowerSeries:
    """A power timeline (watts), decimated by pair-merging when it reaches ``max_points``."""

    def __init__(self, max_points: int = DEFAULT_MAX_POWER_POINTS) -> None:
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self.t_s = array("d")
        self.power_w = array("d")
        self.peak_w = array("d")

    def add(self, t_s: float, power_w: float) -> None:
        if self.t_s and t_s < self.t_s[-1]:
            return
        self.t_s.append(t_s)
        self.power_w.append(power_w)
        self.peak_w.append(power_w)
        if len(self.t_s) >= self.max_points:
            self._halve()

    def _halve(self) -> None:
        n = len(self.t_s) // 2 * 2
        t, p, k = self.t_s, self.power_w, self.peak_w
        new_t = array("d", ((t[i] + t[i + 1]) / 2 for i in range(0, n, 2)))
        new_p = array("d", ((p[i] + p[i + 1]) / 2 for i in range(0, n, 2)))
        new_k = array("d", (max(k[i], k[i + 1]) for i in range(0, n, 2)))
        if n < len(t):  # an odd last point stays as it is
            new_t.append(t[-1])
            new_p.append(p[-1])
            new_k.append(k[-1])
        self.t_s, self.power_w, self.peak_w = new_t, new_p, new_k

    def __len__(self) -> int:
        return len(self.t_s)

    def span(self, start_s: float, end_s: float) -> tuple[int, int]:
        """Indices ``[i, j)`` of the points inside ``[start_s, end_s]``."""
        return bisect_left(self.t_s, start_s), bisect_right(self.t_s, end_s)


@dataclass
class Channel:
    """Everything known about one (source, component, device)."""

    source: str
    component: Component
    device: str
    counter: CounterSeries | None = None
    power: PowerSeries | None = None


class ReadingLog:
    """All channels of a measurement. Thread-safe: the sampler appends while windows are computed."""

    def __init__(self, max_power_points: int = DEFAULT_MAX_POWER_POINTS) -> None:
        self.max_power_points = max_power_points
        self.lock = threading.Lock()
        self.sources: dict[str, SourceMeta] = {}
        self.channels: dict[tuple[str, Component, str], Channel] = {}
        self._latest_power: dict[tuple[str, Component, str], tuple[float, float]] = {}

    def add_source(self, meta: SourceMeta) -> None:
        with self.lock:
            self.sources[meta.name] = meta

    def add(self, readings: list[Reading]) -> None:
        with self.lock:
            for r in readings:
                key = (r.source, r.component, r.device)
                ch = self.channels.get(key)
                if ch is None:
                    ch = self.channels[key] = Channel(r.source, r.component, r.device)
                if r.energy_j is not None:
                    if ch.counter is None:
                        ch.counter = CounterSeries()
                    prev = ch.counter.energy_j[-1] if len(ch.counter) else None
                    prev_t = ch.counter.t_s[-1] if len(ch.counter) else None
                    ch.counter.add(r.t_s, r.energy_j, r.counter_reset)
                    if prev is not None and prev_t is not None and r.energy_j != prev and r.t_s > prev_t:
                        # a live power figure for counter-only sources (RAPL): the last segment's slope
                        self._latest_power[key] = (r.t_s, (r.energy_j - prev) / (r.t_s - prev_t))
                if r.power_w is not None:
                    if ch.power is None:
                        ch.power = PowerSeries(self.max_power_points)
                    ch.power.add(r.t_s, r.power_w)
                    self._latest_power[key] = (r.t_s, r.power_w)

    def latest_power(self) -> dict[tuple[str, Component, str], tuple[float, float]]:
        with self.lock:
            return dict(self._latest_power)

    def readings(
        self, start_s: float | None = None, end_s: float | None = None, *, pad: bool = False
    ) -> list[Reading]:
        """Stored readings (each counter value's first read and the read before it, the last counter
        read, power points), time-ordered.

        With ``pad``, each series also gives its last point before ``start_s`` and first after ``end_s``
        (counters: two changes each way, since an increment's span reaches back to the update before it),
        so that windows at the edges can be recomputed exactly from the result (traces).
        """
        lo = float("-inf") if start_s is None else start_s
        hi = float("inf") if end_s is None else end_s
        extra = 1 if pad else 0
        out: list[Reading] = []
        with self.lock:
            for ch in self.channels.values():
                if ch.counter is not None:
                    c = ch.counter
                    i = max(bisect_left(c.t_s, lo) - 2 * extra, 0)
                    j = bisect_right(c.t_s, hi) + 2 * extra
                    for t, e, reset in c.reads(i, j):
                        out.append(Reading(t, ch.source, ch.component, ch.device, None, e, reset))
                if ch.power is not None:
                    p = ch.power
                    i, j = p.span(lo, hi)
                    i, j = max(i - extra, 0), min(j + extra, len(p))
                    for k in range(i, j):
                        out.append(Reading(p.t_s[k], ch.source, ch.component, ch.device, p.power_w[k], None))
        out.sort(key=lambda r: r.t_s)
        return out

    def time_range(self) -> tuple[float, float] | None:
        with self.lock:
            ts: list[float] = []
            for ch in self.channels.values():
                if ch.counter is not None and len(ch.counter):
                    ts.append(ch.counter.t_s[0])
                    ts.append(ch.counter.last_read_s or ch.counter.t_s[-1])
                if ch.power is not None and len(ch.power):
                    ts.append(ch.power.t_s[0])
                    ts.append(ch.power.t_s[-1])
        return (min(ts), max(ts)) if ts else None

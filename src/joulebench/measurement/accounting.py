"""Windows: energy, average and peak power of every channel between two instants, and its uncertainty.

Counters follow the rule of :mod:`joulebench.measurement.counter` (docs/counters.md): each increment is
spread over the span it covers, held stretches get no energy, and the bound counts what the reads cannot
place. Power timelines are integrated with the trapezoid rule, the edges interpolated; their bound assumes
power changes at most once between two readings. A window shorter than the counter period (or the
sampling period of a power-only source) is flagged, never silently 0 J.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping

from joulebench.measurement.counter import RESET, CounterSeries, counter_window
from joulebench.measurement.records import Component, ComponentEnergy, Method, StageResult
from joulebench.measurement.series import Channel, PowerSeries, ReadingLog, SourceMeta

SHORT_COUNTER = "shorter-than-counter-period"
SHORT_SAMPLE = "shorter-than-sample-period"
EXTRAPOLATED = "extrapolated"
NO_COUNTER = "integrated-no-counter"
NO_SAMPLES = "no-samples"
ESTIMATED = "estimated"
INCOMPLETE = "incomplete"
COUNTER_RESET = RESET
#: the flags a window's accounting sets (``includes-<component>`` too): computed again with the window
ACCOUNTING_FLAGS = frozenset(
    {SHORT_COUNTER, SHORT_SAMPLE, EXTRAPOLATED, NO_COUNTER, NO_SAMPLES, ESTIMATED, INCOMPLETE, COUNTER_RESET}
)

IdleMap = Mapping[tuple[Component, str], float]

# Measured parts that OTHER = NODE - parts subtracts. PLATFORM (psys) contains the packages: never summed.
_NODE_PARTS = (Component.GPU, Component.CPU, Component.DRAM)
_METHOD_RANK = {Method.COUNTER: 0, Method.INTEGRATED: 1, Method.DERIVED: 2, Method.ESTIMATED: 3}


def _segment_peak_w(series: CounterSeries, start_s: float, end_s: float, min_dt_s: float) -> float | None:
    """Highest average power of the counter segments that overlap the window. Segments much shorter than
    the polling interval (the reads at start and stop) are skipped: a counter's own granularity would
    make their slope noisy."""
    ts, es = series.t_s, series.energy_j
    n = len(ts)
    if n < 2:
        return None
    lo = max(bisect_right(ts, start_s) - 1, 0)
    hi = min(bisect_right(ts, end_s), n - 1)
    slopes: list[tuple[float, float]] = []
    for k in range(lo, max(hi, lo + 1)):
        if k + 1 >= n:
            break
        dt = ts[k + 1] - ts[k]
        slopes.append((dt, (es[k + 1] - es[k]) / dt))
    long_enough = [p for dt, p in slopes if dt >= min_dt_s]
    candidates = long_enough or [p for _, p in slopes]
    return max(candidates) if candidates else None


def _power_at(series: PowerSeries, t_s: float) -> float:
    ts, ps = series.t_s, series.power_w
    i = bisect_right(ts, t_s)
    if i == 0:
        return ps[0]
    if i >= len(ts):
        return ps[-1]
    t0, t1 = ts[i - 1], ts[i]
    return ps[i - 1] + (ps[i] - ps[i - 1]) * (t_s - t0) / (t1 - t0)


def integrate_power(series: PowerSeries, start_s: float, end_s: float) -> tuple[float, float, float] | None:
    """Trapezoid integral over the window: ``(energy_j, peak_w, seconds outside the samples)``.

    Beyond the first or last point the power is held constant.
    """
    if len(series) == 0:
        return None
    ts, ps, ks = series.t_s, series.power_w, series.peak_w
    i, j = series.span(start_s, end_s)
    xs = [start_s, *ts[i:j], end_s]
    ys = [_power_at(series, start_s), *ps[i:j], _power_at(series, end_s)]
    energy = sum((xs[k + 1] - xs[k]) * (ys[k] + ys[k + 1]) / 2 for k in range(len(xs) - 1))
    peak = max([ys[0], ys[-1], *ks[i:j]])
    outside = max(ts[0] - start_s, end_s - ts[-1], 0.0)
    return energy, peak, outside


def power_uncertainty_j(series: PowerSeries, start_s: float, end_s: float, update_s: float) -> float:
    """Bound of :func:`integrate_power`'s error when power changes at most once between two readings and
    a reading may be up to ``update_s`` old: each change between two readings may lie anywhere in that
    gap (and the reading's age before it), so it moves energy by at most the step times that span."""
    ts, ps = series.t_s, series.power_w
    n = len(ts)
    if n < 2:
        return 0.0
    # a change read at t_k + 1 may have happened up to update_s before t_k: reach past the window's end
    i, j = series.span(start_s, end_s + update_s)
    total = 0.0
    for k in range(max(i - 1, 0), min(j, n - 1)):
        a, b = ts[k] - update_s, ts[k + 1]
        if b > start_s and a < end_s:
            total += abs(ps[k + 1] - ps[k]) * min(b - a, end_s - start_s)
    return total


def channel_energy(
    ch: Channel, meta: SourceMeta | None, start_s: float, end_s: float, idle_w: float | None = None
) -> ComponentEnergy:
    """Energy of one channel inside ``[start_s, end_s]``, with the bound of its error."""
    duration = end_s - start_s
    flags: list[str] = []
    energy: float | None = None
    uncertainty: float | None = None
    peak: float | None = None
    meta = meta or SourceMeta(name=ch.source, interval_s=0.0)
    estimated = meta.estimated
    method = Method.ESTIMATED if estimated else Method.COUNTER
    # holding a value across one polling interval is what sampling means; beyond that, say so
    tolerance = meta.interval_s
    max_power = meta.max_power_w or 0.0
    counted = None
    if ch.counter is not None:
        counted = counter_window(
            ch.counter,
            start_s,
            end_s,
            period_s=meta.counter_period_s or 0.0,
            resolution_j=meta.resolution_j or 0.0,
            max_power_w=max_power,
        )
    if counted is not None and ch.counter is not None:
        energy, uncertainty = counted.energy_j, counted.uncertainty_j
        if max(counted.outside_s, counted.uncovered_s) > tolerance:
            flags.append(EXTRAPOLATED)  # now: "reaches beyond the reads"; nothing is extrapolated there
        if counted.reset:
            flags.append(COUNTER_RESET)
        if meta.counter_period_s and duration < meta.counter_period_s:
            flags.append(SHORT_COUNTER)
        if ch.power is not None and len(ch.power):
            integrated = integrate_power(ch.power, start_s, end_s)
            peak = integrated[1] if integrated else None
        else:
            peak = _segment_peak_w(ch.counter, start_s, end_s, tolerance / 2)
            if peak is None and energy == 0.0:
                peak = 0.0  # a counter that never moved
    elif ch.power is not None and len(ch.power):
        integrated = integrate_power(ch.power, start_s, end_s)
        assert integrated is not None
        energy, peak = integrated[0], integrated[1]
        interval = meta.power_interval_s or meta.interval_s
        update = max(interval, meta.counter_period_s or 0.0)
        uncertainty = power_uncertainty_j(ch.power, start_s, end_s, update) + integrated[2] * (
            max_power or peak
        )
        if meta.power_resolution_w:
            uncertainty += meta.power_resolution_w / 2 * duration
        if integrated[2] > max(tolerance, interval):
            flags.append(EXTRAPOLATED)
        if not estimated:
            method = Method.INTEGRATED
            if ch.component == Component.GPU:  # a GPU without its energy counter
                flags.append(NO_COUNTER)
        if interval and duration < interval:
            flags.append(SHORT_SAMPLE)
    else:
        flags.append(NO_SAMPLES)
        method = Method.ESTIMATED if estimated else Method.INTEGRATED
    if estimated:
        flags.append(ESTIMATED)
        uncertainty = None  # a model has no measured bound
    avg = energy / duration if energy is not None and duration > 0 else None
    above = energy - idle_w * duration if energy is not None and idle_w is not None else None
    return ComponentEnergy(
        component=ch.component,
        device=ch.device,
        energy_j=energy,
        duration_s=duration,
        avg_power_w=avg,
        peak_power_w=peak,
        method=method,
        idle_power_w=idle_w,
        above_idle_energy_j=above,
        flags=tuple(flags),
        uncertainty_j=uncertainty,
    )


def _sum_or_none(values: Iterable[float | None]) -> float | None:
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return float(sum(v for v in vals if v is not None))


def combine(component: Component, parts: list[ComponentEnergy], device: str = "all") -> ComponentEnergy:
    """Sum of devices. The peak is the sum of the device peaks (an upper bound of the combined peak)."""
    duration = parts[0].duration_s
    energy = _sum_or_none(p.energy_j for p in parts)
    flags = sorted({f for p in parts for f in p.flags})
    if energy is None and any(p.energy_j is not None for p in parts):
        flags.append(INCOMPLETE)
    method = max((p.method for p in parts), key=_METHOD_RANK.__getitem__)
    idle = _sum_or_none(p.idle_power_w for p in parts)
    return ComponentEnergy(
        component=component,
        device=device,
        energy_j=energy,
        duration_s=duration,
        avg_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=_sum_or_none(p.peak_power_w for p in parts),
        method=method,
        idle_power_w=idle,
        above_idle_energy_j=energy - idle * duration if energy is not None and idle is not None else None,
        flags=tuple(flags),
        uncertainty_j=_sum_or_none(p.uncertainty_j for p in parts),
    )


def derive_other(totals: dict[Component, ComponentEnergy]) -> ComponentEnergy | None:
    """OTHER = NODE - (GPU + CPU + DRAM), from measured values only; missing parts are named in flags."""
    node = totals.get(Component.NODE)
    if node is None or node.energy_j is None:
        return None
    flags = [f for f in node.flags if f != ESTIMATED]
    parts: list[ComponentEnergy] = []
    for comp in _NODE_PARTS:
        part = totals.get(comp)
        if part is None or part.estimated or part.energy_j is None:
            flags.append(f"includes-{comp.value}")  # not measured, so OTHER still contains it
        else:
            parts.append(part)
            flags.extend(f for f in part.flags if f not in flags)
    energy = node.energy_j - sum(p.energy_j for p in parts if p.energy_j is not None)
    # a difference of measurements is off by at most the sum of their bounds
    uncertainty = _sum_or_none([node.uncertainty_j, *(p.uncertainty_j for p in parts)])
    duration = node.duration_s
    idle: float | None = node.idle_power_w
    if idle is not None:
        part_idle = _sum_or_none(p.idle_power_w for p in parts) if parts else 0.0
        idle = idle - part_idle if part_idle is not None else None
    return ComponentEnergy(
        component=Component.OTHER,
        device="all",
        energy_j=energy,
        duration_s=duration,
        avg_power_w=energy / duration if duration > 0 else None,
        peak_power_w=None,
        method=Method.DERIVED,
        idle_power_w=idle,
        above_idle_energy_j=energy - idle * duration if idle is not None else None,
        flags=tuple(flags),
        uncertainty_j=uncertainty,
    )


def compute_window(
    log: ReadingLog, name: str, start_s: float, end_s: float, idle: IdleMap | None = None
) -> StageResult:
    """One :class:`StageResult`: a row per (component, device), a ``device="all"`` row per component
    (measured devices only: an estimated device is never summed with a measured one), and OTHER."""
    if end_s < start_s:
        raise ValueError(f"window {name!r} ends before it starts ({start_s} > {end_s})")
    idle = idle or {}
    rows: list[ComponentEnergy] = []
    with log.lock:
        channels = list(log.channels.values())
        sources = dict(log.sources)
        for ch in sorted(channels, key=lambda c: (c.component.value, c.device, c.source)):
            meta = sources.get(ch.source)
            rows.append(channel_energy(ch, meta, start_s, end_s, idle.get((ch.component, ch.device))))
    totals: dict[Component, ComponentEnergy] = {}
    for comp in Component:
        mine = [r for r in rows if r.component is comp]
        if not mine:
            continue
        measured = [r for r in mine if not r.estimated]
        total = combine(comp, measured or mine)
        totals[comp] = total
    other = derive_other(totals)
    if other is not None:
        totals[Component.OTHER] = other
    components = [*rows, *totals.values()]
    return StageResult(name=name, start_s=start_s, end_s=end_s, components=tuple(components))

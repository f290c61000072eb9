"""The Monitor: what the runner and the CLI use to measure energy over named stages.

    with Monitor() as mon:                 # auto-detects nvml, rapl, ipmi
        mon.measure_idle(5)                # optional idle baseline
        with mon.stage("load"):
            ...
    for result in mon.stages():
        print(result.name, result.energy_j(Component.GPU))

Stages may nest or overlap; a stage can also be reported after the fact (``span``) or computed for any
interval inside the measurement (``window``), because counter readings are kept for the whole
measurement (see :mod:`joulebench.measurement.series` for the memory bound).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from joulebench.errors import JoulebenchError, UsageError
from joulebench.measurement import markers
from joulebench.measurement.accounting import compute_window
from joulebench.measurement.records import (
    Component,
    ComponentEnergy,
    DeviceInfo,
    Reading,
    SourceStatus,
    StageResult,
)
from joulebench.measurement.series import DEFAULT_MAX_POWER_POINTS, ReadingLog
from joulebench.measurement.source import PowerSource

UNFINISHED = "unfinished"
PAUSED = "monitor-paused"  # the window overlaps a time the sampler was paused: its energy is interpolated
IDLE_UTILIZATION_PERIOD_S = 0.5  # how often measure_idle reads each device's utilisation
MIN_INTERVAL_S = 0.001
# the longest a window ending now waits for a reading is never less than this: a loaded machine can hold
# the sampler's thread back that long, and the wait ends at the reading, so it costs nothing on time
SETTLE_MIN_WAIT_S = 1.0


class Monitor:
    """Samples power sources in the background and turns stage marks into energy windows.

    Implements the :class:`~joulebench.measurement.markers.StageMarks` protocol.
    """

    def __init__(
        self,
        sources: list[PowerSource] | None = None,
        *,
        interval_s: float = 0.1,
        gpu_power_interval_s: float = 0.02,
        estimate: bool = False,
        gpu_indices: list[int] | None = None,
        cpu_tdp_w: float | None = None,
        max_power_points: int = DEFAULT_MAX_POWER_POINTS,
    ) -> None:
        # finer than a millisecond, the sampler would spin a core: its own load inside what it measures
        if not interval_s >= MIN_INTERVAL_S:
            raise UsageError(f"interval must be at least {MIN_INTERVAL_S * 1000:g} ms, got {interval_s} s")
        if not gpu_power_interval_s >= MIN_INTERVAL_S:
            raise UsageError(
                f"GPU power interval must be at least {MIN_INTERVAL_S * 1000:g} ms, "
                f"got {gpu_power_interval_s} s"
            )
        if cpu_tdp_w is not None and not cpu_tdp_w > 0:
            raise UsageError(f"CPU TDP must be positive, got {cpu_tdp_w} W")
        self.interval_s = interval_s
        self.gpu_power_interval_s = gpu_power_interval_s
        self.estimate = estimate
        self.gpu_indices = gpu_indices
        self.cpu_tdp_w = cpu_tdp_w
        self.log = ReadingLog(max_power_points)
        self._given_sources = sources
        self._sources: list[PowerSource] = []
        self._statuses: list[SourceStatus] = []
        self._marks_lock = threading.Lock()
        self._open: dict[str, float] = {}
        self._done: list[tuple[str, float, float, bool]] = []
        self._idle: dict[tuple[Component, str], float] = {}
        self._idle_window: tuple[float, float] | None = None
        #: per device, the highest utilisation read during :meth:`measure_idle` (where a source reports it)
        self.idle_utilization_pct: dict[str, float] = {}
        self._followers: list[Any] = []
        self._infos: dict[str, list[DeviceInfo]] = {"start": [], "end": []}
        self._sampler: Any = None
        self._pauses: list[tuple[float, float]] = []  # (paused, resumed); open while paused
        self._paused_at: float | None = None
        self.start_s: float | None = None
        self.end_s: float | None = None
        self._replay = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def _choose_sources(self) -> None:
        from joulebench.measurement.detect import MEASURED, make_source, missing_for_estimate, probe_sources

        opts = {
            "interval_s": self.interval_s,
            "gpu_power_interval_s": self.gpu_power_interval_s,
            "gpu_indices": self.gpu_indices,
            "cpu_tdp_w": self.cpu_tdp_w,
        }
        candidates = (
            list(self._given_sources)
            if self._given_sources is not None
            else [make_source(n, **opts) for n in MEASURED]  # type: ignore[arg-type]
        )
        statuses = probe_sources(candidates)
        if self.estimate and not any(s.estimated for s in candidates):
            missing = missing_for_estimate(statuses)
            est = make_source("estimate", estimate_components=missing, **opts)  # type: ignore[arg-type]
            candidates.append(est)
            statuses += probe_sources([est])
        self._statuses = statuses
        self._sources = [src for src, st in zip(candidates, statuses, strict=False) if st.available]
        for src, st in zip(candidates, statuses, strict=False):
            if not st.available:
                src.close()
        for src in self._sources:
            src.calibrate()  # each counter's update period as this machine shows it, not as assumed

    def start(self) -> Monitor:
        """Probe the sources, take start device info, start sampling. Cheap: no heavy imports."""
        if self._replay:
            raise UsageError("a monitor replaying a trace cannot be started")
        if self._sampler is not None:
            return self
        from joulebench.measurement.sampler import Sampler

        self._choose_sources()
        self._infos["start"] = self._collect_info()
        self._sampler = Sampler(self._sources, self.log, on_tick=self._poll_followers)
        self._sampler.start()
        self.start_s = time.monotonic()
        markers.register_active(self)
        return self

    def stop(self) -> Monitor:
        """Stop sampling. Stages still open are closed now and flagged ``unfinished``."""
        if self._sampler is None or self.end_s is not None:
            return self
        markers.unregister_active(self)
        self._poll_followers()
        t = time.monotonic()
        self.end_s = t
        with self._marks_lock:
            for name, begun in self._open.items():
                self._done.append((name, begun, t, True))
            self._open.clear()
        self.settle(t)
        self._sampler.stop()
        self._infos["end"] = self._collect_info()
        for src in self._sources:
            src.close()
        return self

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._sampler is not None and self.end_s is None

    def _collect_info(self) -> list[DeviceInfo]:
        out: list[DeviceInfo] = []
        for src in self._sources:
            try:
                out.extend(src.device_info())
            except Exception:  # facts are nice to have; never a reason to fail a measurement
                continue
        return out

    # -- stage marks (StageMarks protocol) -----------------------------------------------------------

    def begin(self, name: str, t_s: float | None = None) -> None:
        markers.validate_stage_name(name)
        t = time.monotonic() if t_s is None else float(t_s)
        with self._marks_lock:
            if name in self._open:
                raise UsageError(f"stage {name!r} already begun (end it first, or use another name)")
            self._open[name] = t

    def end(self, name: str, t_s: float | None = None) -> None:
        t = time.monotonic() if t_s is None else float(t_s)
        with self._marks_lock:
            if name not in self._open:
                raise UsageError(f"stage {name!r} ended but never begun")
            begun = self._open.pop(name)
            if t < begun:
                raise UsageError(f"stage {name!r} ends before it begins")
            self._done.append((name, begun, t, False))

    def span(self, name: str, start_s: float, end_s: float) -> None:
        markers.validate_stage_name(name)
        if end_s < start_s:
            raise UsageError(f"stage {name!r} ends before it begins ({start_s} > {end_s})")
        with self._marks_lock:
            self._done.append((name, float(start_s), float(end_s), False))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.begin(name)
        try:
            yield
        finally:
            self.end(name)

    def follow_stage_file(self, path: str | Path) -> None:
        """Read stage marks that a child process appends to ``path`` (docs/stage-protocol.md).
        The sampler thread polls the file every 100 ms; :meth:`stop` reads what is left."""
        from joulebench.measurement.stagefile import StageFileFollower

        self._followers.append(StageFileFollower(path, self))

    def follows(self, path: str | Path) -> bool:
        """Whether this monitor reads stage marks from ``path``."""
        target = os.path.realpath(path)
        return any(os.path.realpath(f.path) == target for f in self._followers)

    def _poll_followers(self) -> None:
        for f in self._followers:
            f.poll()

    def stage_file_errors(self) -> list[str]:
        """Malformed or inconsistent lines read from stage files (each skipped, never fatal)."""
        return [e for f in self._followers for e in f.errors]

    # -- results -------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop sampling for a while (the monitor's own cost, switched off); windows that overlap a pause
        are flagged ``monitor-paused``."""
        if self.running and self._paused_at is None:
            self._sampler.pause()
            self._paused_at = time.monotonic()

    def resume(self) -> None:
        """Sample again, and wait for a fresh counter update so that the next window has a measured edge."""
        if self._paused_at is None:
            return
        self._sampler.resume()
        t = time.monotonic()
        self._pauses.append((self._paused_at, t))
        self._paused_at = None
        self.settle(t)

    def window(self, name: str, start_s: float, end_s: float) -> StageResult:
        """Energy of every component inside ``[start_s, end_s]`` (any interval of the measurement).

        While sampling, a window that ends just now waits for the next counter update or power reading
        (at most ~2.5 counter periods or read intervals, or a second if that is longer), so its end is
        interpolated rather than extrapolated."""
        if end_s < start_s:
            raise UsageError(f"window {name!r} ends before it begins ({start_s} > {end_s})")
        if self.running and self._paused_at is None:
            self.settle(end_s)
        result = compute_window(self.log, name, start_s, end_s, self._idle)
        pauses = [*self._pauses, *([(self._paused_at, end_s)] if self._paused_at is not None else [])]
        if any(a < end_s and b > start_s for a, b in pauses):
            flagged = tuple(replace(c, flags=(*c.flags, PAUSED)) for c in result.components)
            result = replace(result, components=flagged)
        return result

    def settle(self, t_s: float) -> None:
        """Wait until every source has published what it knows up to ``t_s`` (see ``Sampler.settle``)."""
        if self._sampler is None:
            return
        # a counter publishes once a period; a source without one, once a read interval
        periods = [
            s.counter_period_s if s.counter_period_s is not None else s.interval_s for s in self._sources
        ]
        max_wait = max(2.5 * max([*periods, 0.0]) + self.interval_s, SETTLE_MIN_WAIT_S)
        if t_s < time.monotonic() - max_wait:
            return
        self._sampler.settle(t_s, max_wait_s=max_wait)

    def stages(self) -> list[StageResult]:
        """Every finished stage, in the order they ended (stages open at stop are flagged unfinished)."""
        with self._marks_lock:
            done = list(self._done)
        out = []
        for name, a, b, unfinished in done:
            result = self.window(name, a, b)
            if unfinished:
                result = replace(
                    result,
                    components=tuple(replace(c, flags=(*c.flags, UNFINISHED)) for c in result.components),
                )
            out.append(result)
        return out

    def open_stages(self) -> dict[str, float]:
        with self._marks_lock:
            return dict(self._open)

    def measure_idle(self, seconds: float) -> dict[tuple[Component, str], float]:
        """Sample ``seconds`` of idle and keep each (component, device)'s average power as its baseline;
        later windows report ``idle_power_w`` and ``above_idle_energy_j``. Starts the monitor if needed."""
        if not seconds > 0:
            raise UsageError(f"idle duration must be positive, got {seconds} s")
        if not self.running:
            self.start()
        a = time.monotonic()
        busiest: dict[str, float] = {}
        # a device's utilisation covers its last sample period only (1/6 s to 1 s on NVIDIA GPUs), so it
        # is read through the baseline: another process's work raises the baseline, and with it lowers
        # every above-idle energy of the run
        while (left := a + seconds - time.monotonic()) > 0:
            time.sleep(min(IDLE_UTILIZATION_PERIOD_S, left))
            for source in self._sources:
                for device, pct in source.utilization_pct().items():
                    busiest[device] = max(busiest.get(device, 0.0), pct)
        b = time.monotonic()
        self.settle(b)
        self.set_idle(compute_window(self.log, "idle", a, b), (a, b))
        self.idle_utilization_pct = busiest
        return dict(self._idle)

    def set_idle(self, result: StageResult, window: tuple[float, float] | None = None) -> None:
        """Use ``result``'s average powers as the idle baseline."""
        self._idle = {
            (c.component, c.device): c.avg_power_w for c in result.components if c.avg_power_w is not None
        }
        self._idle_window = window or (result.start_s, result.end_s)

    def idle_power_w(self) -> dict[tuple[Component, str], float]:
        return dict(self._idle)

    def statuses(self) -> list[SourceStatus]:
        """Each probed source; read errors seen while sampling are added to the reason."""
        errors = self._sampler.errors if self._sampler is not None else {}
        out = []
        for st in self._statuses:
            if st.name in errors:
                count, last = errors[st.name]
                st = replace(
                    st, reason=f"{st.reason}; {count} read error{'s' if count > 1 else ''} (last: {last})"
                )
            out.append(st)
        return out

    def sources(self) -> list[PowerSource]:
        return list(self._sources)

    def memory_mib(self) -> dict[str, tuple[int, int]]:
        """Per device, ``(used, total)`` memory in MiB now, from every source that can tell."""
        out: dict[str, tuple[int, int]] = {}
        for source in self._sources:
            out.update(source.memory_mib())
        return out

    def device_info(self) -> dict[str, list[DeviceInfo]]:
        return {"start": list(self._infos["start"]), "end": list(self._infos["end"])}

    def latest_power_w(self) -> dict[str, float]:
        """Latest power per component, summed over devices, for a live display. Estimated components are
        keyed ``"<component>_estimated"``; PLATFORM (psys) is included but never part of another key."""
        estimated = {m.name for m in self.log.sources.values() if m.estimated}
        out: dict[str, float] = {}
        for (source, comp, _device), (_t, watts) in self.log.latest_power().items():
            key = f"{comp.value}_estimated" if source in estimated else comp.value
            out[key] = out.get(key, 0.0) + watts
        return out

    def readings(self, start_s: float | None = None, end_s: float | None = None) -> list[Reading]:
        return self.log.readings(start_s, end_s)

    def write_trace(self, path: str | Path, start_s: float | None = None, end_s: float | None = None) -> Path:
        """Save readings (with one reading beyond each edge, so windows replay exactly), stages, the
        idle baseline and source statuses; the format follows the extension (docs/trace-format.md)."""
        from joulebench.measurement.trace import Trace, write_trace

        a = start_s if start_s is not None else self.start_s
        b = end_s if end_s is not None else self.end_s
        if a is None or b is None:
            span = self.log.time_range()
            if span is None:
                raise JoulebenchError("nothing was measured: no trace to write")
            a = span[0] if a is None else a
            b = span[1] if b is None else b
        kept = [(n, s, e, u) for n, s, e, u in self._done if e >= a and s <= b]
        stages = [(n, s, e) for n, s, e, _ in kept]
        trace = Trace(
            sources=list(self.log.sources.values()),
            statuses=self.statuses(),
            readings=self.log.readings(a, b, pad=True),
            stages=stages,
            unfinished={(n, s, e) for n, s, e, u in kept if u},
            idle=self._idle_window,
            idle_power_w=dict(self._idle),
            start_s=a,
            end_s=b,
        )
        return write_trace(path, trace)

    @classmethod
    def from_trace(cls, path: str | Path, trace: Any = None) -> Monitor:
        """A stopped monitor holding a trace's readings, stages and idle baseline: ``window``,
        ``stages`` and ``statuses`` give what the recording monitor gave. ``trace``: one already parsed
        (a :class:`~joulebench.measurement.trace.Trace`), which ``path`` then only names."""
        from joulebench.measurement.replay import ReplaySource

        src = ReplaySource(path, trace)
        mon = cls(sources=[src])
        mon._replay = True
        trace = src.trace
        for meta in src.source_metas():
            mon.log.add_source(meta)
        mon.log.add(src.read())
        mon._sources = [src]
        mon._statuses = [*trace.statuses, src.probe()]
        mon._done = [(n, a, b, (n, a, b) in trace.unfinished) for n, a, b in trace.stages]
        mon._idle = dict(trace.idle_power_w)
        mon._idle_window = trace.idle
        span = mon.log.time_range()
        mon.start_s = trace.start_s if trace.start_s is not None else (span[0] if span else None)
        mon.end_s = trace.end_s if trace.end_s is not None else (span[1] if span else None)
        return mon


def totals(result: StageResult) -> list[ComponentEnergy]:
    """The ``device="all"`` rows of a result, one per component."""
    return [c for c in result.components if c.device == "all"]

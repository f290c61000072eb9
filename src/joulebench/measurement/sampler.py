"""The sampler: background threads that read every source at its interval on the monotonic clock.

One thread serves every quick source (NVML, RAPL, estimates), each read when due; a source whose read is
slow (``blocking``, e.g. ``ipmitool``) gets a thread of its own so it never delays the others. A failing
read is counted and skipped (the windows interpolate over the gap); it never stops the measurement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from joulebench.measurement.series import ReadingLog
from joulebench.measurement.source import PowerSource


@dataclass
class _Task:
    source: PowerSource
    fast: bool  # read_power() rather than read()
    interval_s: float
    due_s: float


class Sampler:
    """Reads ``sources`` into ``log`` until stopped. ``on_tick`` runs in the sampler thread each cycle."""

    def __init__(
        self,
        sources: list[PowerSource],
        log: ReadingLog,
        *,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 0.1,
    ) -> None:
        self.sources = sources
        self.log = log
        self.on_tick = on_tick
        self.tick_s = tick_s
        self.errors: dict[str, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._active = threading.Event()  # cleared while paused: no reads, no ticks
        self._active.set()
        self._threads: list[threading.Thread] = []
        self._errors_lock = threading.Lock()

    def _read(self, source: PowerSource, fast: bool) -> None:
        try:
            readings = source.read_power() if fast else source.read()
        except Exception as exc:
            with self._errors_lock:
                count, _ = self.errors.get(source.name, (0, ""))
                self.errors[source.name] = (count + 1, f"{type(exc).__name__}: {exc}".splitlines()[0])
            return
        if readings:
            self.log.add(readings)

    def read_all_now(self) -> None:
        """One synchronous read of every quick source (at start and at stop, so windows have edges)."""
        for source in self.sources:
            if source.blocking:
                continue
            self._read(source, False)
            if source.power_interval_s:
                self._read(source, True)

    def start(self) -> None:
        for source in self.sources:
            for meta in source.source_metas():
                self.log.add_source(meta)
        self._stop.clear()
        self._active.set()
        self.read_all_now()
        now = time.monotonic()
        tasks: list[_Task] = []
        for source in self.sources:
            if source.blocking:
                t = threading.Thread(
                    target=self._run_blocking, args=(source,), name=f"joulebench-{source.name}"
                )
                t.daemon = True
                self._threads.append(t)
                continue
            tasks.append(_Task(source, False, source.interval_s, now + source.interval_s))
            if source.power_interval_s:
                tasks.append(_Task(source, True, source.power_interval_s, now + source.power_interval_s))
        main = threading.Thread(target=self._run_quick, args=(tasks,), name="joulebench-sampler", daemon=True)
        self._threads.insert(0, main)
        for t in self._threads:
            t.start()

    def _run_quick(self, tasks: list[_Task]) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if self._wait_if_paused():
                continue
            now = time.monotonic()
            for task in tasks:
                if now >= task.due_s:
                    self._read(task.source, task.fast)
                    task.due_s += task.interval_s
                    if task.due_s < now:  # fell behind (a slow read): skip, never burst to catch up
                        task.due_s = now + task.interval_s
            if self.on_tick is not None and now >= next_tick:
                next_tick = now + self.tick_s
                try:
                    self.on_tick()
                except Exception as exc:
                    with self._errors_lock:
                        count, _ = self.errors.get("stage-file", (0, ""))
                        self.errors["stage-file"] = (count + 1, str(exc))
            dues = [t.due_s for t in tasks] + ([next_tick] if self.on_tick is not None else [])
            if not dues:  # nothing to poll here (only blocking sources): sleep until stopped
                self._stop.wait()
                return
            self._stop.wait(max(min(dues) - time.monotonic(), 0.0))

    def _run_blocking(self, source: PowerSource) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            if self._wait_if_paused():
                due = time.monotonic()
                continue
            self._read(source, False)
            due += source.interval_s
            now = time.monotonic()
            if due < now:
                due = now
            self._stop.wait(due - now)

    def _wait_if_paused(self) -> bool:
        """Block while paused (stop wakes it too); True when it waited, so the caller re-checks stop."""
        if self._active.is_set():
            return False
        self._active.wait()
        return True

    def pause(self) -> None:
        """Stop reading (and ticking) until resume(): the cost of measuring, switched off for a while."""
        self._active.clear()

    def resume(self) -> None:
        """Read every quick source at once (a fresh edge for the next window), then go on sampling."""
        if self._active.is_set():
            return
        self.read_all_now()
        self._active.set()

    @property
    def paused(self) -> bool:
        return not self._active.is_set()

    def settle(self, t_s: float, max_wait_s: float) -> None:
        """Keep reading until each source has published what it knows up to ``t_s`` (or time runs out).

        A counter has, once it showed an update after ``t_s`` (the read before it was already later) or
        held for a whole period after it. A source with no counter has, once it gave a power reading after
        ``t_s``. A window ending at ``t_s`` then has a measured edge, not a stretch no read covers: without
        it a power-only source's last reading is held to the edge, and the window differs from the same
        window computed later from the trace."""
        periods = {
            s.name: s.counter_period_s
            for s in self.sources
            if not s.blocking and s.counter_period_s is not None
        }
        # a slow power-only source (ipmitool, in its own thread) too: its reading after the edge is in
        # the trace written a moment later, so a window that held the last one would not replay
        polled = {s.name for s in self.sources if s.counter_period_s is None}
        if not periods and not polled:
            return
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            if self._all_published(periods, polled, t_s):
                return
            time.sleep(0.01)

    def _all_published(self, periods: dict[str, float], polled: set[str], t_s: float) -> bool:
        with self.log.lock:
            for (source, _, _), ch in self.log.channels.items():
                counter, power = ch.counter, ch.power
                if source in periods and counter is not None and len(counter):
                    held_past = (counter.last_read_s or 0.0) >= t_s + periods[source]
                    if counter.before_s[-1] < t_s and not held_past:
                        return False
                elif (
                    source in polled
                    and counter is None
                    and power is not None
                    and len(power)
                    and power.t_s[-1] < t_s
                ):
                    return False
        return True

    def stop(self) -> None:
        self._stop.set()
        self._active.set()  # a paused thread wakes and sees the stop
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []
        self.read_all_now()

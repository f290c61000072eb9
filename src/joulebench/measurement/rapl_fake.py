"""A fake powercap tree: the files the Linux RAPL driver exposes, for machines without RAPL.

It builds what ``/sys/class/powercap`` holds on a two-socket Intel server (the same layout the AMD
driver uses), with the values a test needs::

    intel-rapl/              the control type (enabled)
    intel-rapl:0             package-0   energy_uj, max_energy_range_uj, name, enabled
    intel-rapl:0:0           core
    intel-rapl:0:1           uncore
    intel-rapl:0:2           dram
    intel-rapl:1 ...         package-1 and its subzones
    intel-rapl:2             psys
    intel-rapl-mmio:0        package-0 again, through MMIO (a reader must not count it twice)

Counters wrap at ``max_energy_range_uj`` like the hardware's. :meth:`FakePowercap.make_unreadable`
gives a zone the kernel's post-CVE-2020-8694 mode (``0400`` root). :meth:`FakePowercap.running` advances
the counters in real time from a process of its own, so another process can measure a steady power.

Point joulebench at it with ``JOULEBENCH_POWERCAP_ROOT=<root>``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: the value a Sapphire Rapids package reports (about 262 kJ, 32 bits of 61 uJ units)
DEFAULT_MAX_RANGE_UJ = 262_143_328_850

SUBZONES = ("core", "uncore", "dram")


class FakePowercap:
    """A powercap directory tree with ``sockets`` packages, their core/uncore/dram subzones and psys."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        sockets: int = 2,
        dram: bool = True,
        psys: bool = True,
        core: bool = True,
        uncore: bool = True,
        mmio: bool = True,
        max_range_uj: int = DEFAULT_MAX_RANGE_UJ,
        start_uj: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.max_range_uj = max_range_uj
        self.zones: dict[str, Path] = {}  # "package-0", "dram-0", "core-1", "psys" -> directory
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        control = self.root / "intel-rapl"
        control.mkdir(exist_ok=True)
        (control / "enabled").write_text("1\n")
        for s in range(sockets):
            self._zone(f"intel-rapl:{s}", f"package-{s}", f"package-{s}", start_uj)
            sub = 0
            for kind, wanted in (("core", core), ("uncore", uncore), ("dram", dram)):
                if wanted:
                    self._zone(f"intel-rapl:{s}:{sub}", kind, f"{kind}-{s}", start_uj)
                    sub += 1
            if mmio:
                self._zone(f"intel-rapl-mmio:{s}", f"package-{s}", f"mmio-{s}", start_uj)
        if psys:
            self._zone(f"intel-rapl:{sockets}", "psys", "psys", start_uj)

    def _zone(self, dirname: str, name: str, key: str, start_uj: int) -> None:
        d = self.root / dirname
        d.mkdir(exist_ok=True)
        (d / "name").write_text(f"{name}\n")
        (d / "enabled").write_text("1\n")
        (d / "max_energy_range_uj").write_text(f"{self.max_range_uj}\n")
        (d / "energy_uj").write_text(f"{start_uj % self.max_range_uj}\n")
        self.zones[key] = d

    def energy_uj(self, key: str) -> int:
        return int((self.zones[key] / "energy_uj").read_text())

    def set_energy_uj(self, key: str, value: int) -> None:
        """Write a raw counter value (``value`` must be below ``max_energy_range_uj``)."""
        _write_counter(self.zones[key] / "energy_uj", value)

    def add_energy(self, key: str, joules: float) -> int:
        """Advance a zone's counter by ``joules``, wrapping at ``max_energy_range_uj``; returns it."""
        with self._lock:
            return _advance(self.zones[key] / "energy_uj", joules, self.max_range_uj)

    def make_unreadable(self, key: str) -> None:
        """The kernel's mode since CVE-2020-8694: ``energy_uj`` readable by root only."""
        os.chmod(self.zones[key] / "energy_uj", 0o400)

    @contextmanager
    def running(self, power_w: Mapping[str, PowerSchedule], tick_s: float = 0.005) -> Iterator[float]:
        """Advance the named zones in real time until the block ends; yields the ticker's start
        (``time.monotonic()``, system-wide), from which each schedule's times count.

        ``power_w`` maps a zone to constant watts or to steps ``[(t_from_s, watts), ...]``. The counters
        update every ``tick_s`` (RAPL's hardware: about 1 ms; some AMD parts much slower), each update
        publishing exactly the energy of the schedule since the previous one, then hold between updates.
        A package's power should include its core/uncore share and psys the packages', as on hardware;
        the fake writes exactly what it is given. The counters advance in a process of their own, as the
        hardware's do whatever the processes around them do: a thread here stalled whenever this process
        did (a full garbage collection of a long test run's heap holds every thread while it runs), and its
        counters then lagged the clock by that much. Leave the running zones to it until the block ends.
        """
        spec = {
            "counters": {key: str(self.zones[key] / "energy_uj") for key in power_w},
            "power_w": {key: _steps(schedule) for key, schedule in power_w.items()},
            "max_range_uj": self.max_range_uj,
            "tick_s": tick_s,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "joulebench.measurement.rapl_fake", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            first = proc.stdout.readline().split()
            if first[:1] != [b"ticking"]:
                raise RuntimeError(f"fake powercap ticker failed to start (exit {proc.wait()})")
            yield float(first[1])
        finally:
            proc.stdin.close()  # its end of file is the ticker's signal to stop
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _write_counter(path: Path, value: int) -> None:
    mode = path.stat().st_mode
    tmp = path.with_name("energy_uj.tmp")
    tmp.write_text(f"{value}\n")
    os.chmod(tmp, mode & 0o777)
    os.replace(tmp, path)  # atomic, like a sysfs read: a reader never sees half a number


def _advance(path: Path, joules: float, max_range_uj: int) -> int:
    value = (int(path.read_text()) + round(joules * 1e6)) % max_range_uj
    _write_counter(path, value)
    return value


PowerSchedule = float | Sequence[tuple[float, float]]


def _steps(schedule: PowerSchedule) -> list[tuple[float, float]]:
    if isinstance(schedule, (int, float)):
        return [(0.0, float(schedule))]
    steps = sorted((float(t), float(w)) for t, w in schedule)
    if not steps or steps[0][0] > 0.0:
        steps.insert(0, (0.0, 0.0))
    return steps


def schedule_energy_j(steps: Sequence[Sequence[float]], a_s: float, b_s: float) -> float:
    """Exact joules of a step schedule between two instants (seconds after the ticker's start)."""
    total = 0.0
    for k, (t_from, watts) in enumerate(steps):
        t_to = steps[k + 1][0] if k + 1 < len(steps) else float("inf")
        lo, hi = max(a_s, t_from), min(b_s, t_to)
        if hi > lo:
            total += watts * (hi - lo)
    return total


def _tick(spec: dict[str, Any]) -> None:
    """The ticker process of :meth:`FakePowercap.running`: every ``tick_s`` advances each counter by its
    schedule's energy since the last tick, until its standard input closes."""
    counters = {key: Path(path) for key, path in spec["counters"].items()}
    power_w: dict[str, list[list[float]]] = spec["power_w"]
    max_range_uj, tick_s = int(spec["max_range_uj"]), float(spec["tick_s"])
    start = last = time.monotonic()
    print(f"ticking {start!r}", flush=True)
    while not select.select([sys.stdin], [], [], tick_s)[0]:
        now = time.monotonic()
        for key, steps in power_w.items():
            _advance(counters[key], schedule_energy_j(steps, last - start, now - start), max_range_uj)
        last = now
    # one last tick, so that the counters stand where the clock does when the block ends
    now = time.monotonic()
    for key, steps in power_w.items():
        _advance(counters[key], schedule_energy_j(steps, last - start, now - start), max_range_uj)


if __name__ == "__main__":
    _tick(json.loads(sys.argv[1]))

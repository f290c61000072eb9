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
from collections.abc import Iterator, Mapping
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
    def running(self, power_w: Mapping[str, float], tick_s: float = 0.005) -> Iterator[None]:
        """Advance the named zones at constant watts, in real time, until the block ends.

        A package's power should include its core/uncore share and psys the packages', as on hardware;
        the fake writes exactly what it is given. The counters advance in a process of their own, as the
        hardware's do whatever the processes around them do: a thread here stalled whenever this process
        did (a full garbage collection of a long test run's heap holds every thread while it runs), and its
        counters then lagged the clock by that much. Leave the running zones to it until the block ends.
        """
        spec = {
            "counters": {key: str(self.zones[key] / "energy_uj") for key in power_w},
            "power_w": dict(power_w),
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
            if proc.stdout.readline() != b"ticking\n":
                raise RuntimeError(f"fake powercap ticker failed to start (exit {proc.wait()})")
            yield
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


def _tick(spec: dict[str, Any]) -> None:
    """The ticker process of :meth:`FakePowercap.running`: advances each counter by its watts times the time
    since the last tick, until its standard input closes."""
    counters = {key: Path(path) for key, path in spec["counters"].items()}
    power_w: dict[str, float] = spec["power_w"]
    max_range_uj, tick_s = int(spec["max_range_uj"]), float(spec["tick_s"])
    last = time.monotonic()
    print("ticking", flush=True)
    while not select.select([sys.stdin], [], [], tick_s)[0]:
        now = time.monotonic()
        dt, last = now - last, now
        for key, watts in power_w.items():
            _advance(counters[key], watts * dt, max_range_uj)
    # one last tick, so that the counters stand where the clock does when the block ends
    dt = time.monotonic() - last
    for key, watts in power_w.items():
        _advance(counters[key], watts * dt, max_range_uj)


if __name__ == "__main__":
    _tick(json.loads(sys.argv[1]))

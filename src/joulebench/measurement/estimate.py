"""Estimates for machines that cannot measure CPU or DRAM power: ``run`` and ``measure`` add them where no
source measures a component (``--no-estimate`` turns them off).

Every value from this source has method ``estimated`` and is labelled so in every output; it is never
summed with a measured value.

* CPU power = utilisation (from ``/proc/stat``, all cores, busy = not idle and not iowait) x TDP x
  sockets. The TDP comes from ``--cpu-tdp-w``, else from :data:`CPU_TDP_W` by model name, else
  :data:`DEFAULT_W_PER_CORE` x the cores the machine shows. This ignores idle power and turbo above TDP:
  it is a rough, stated model.
* DRAM power = installed memory (``MemTotal`` in ``/proc/meminfo``) x :data:`DRAM_W_PER_GIB`, a constant:
  DDR4/DDR5 DIMMs draw roughly 3 W per 8 GiB under load.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from joulebench.measurement.records import Component, DeviceInfo, Reading, SourceStatus
from joulebench.measurement.source import PowerSource

NAME = "estimate"
DEVICE = "host"

#: Thermal design power per socket, watts, from the vendors' specification pages.
CPU_TDP_W: dict[str, float] = {
    "Xeon Gold 6426Y": 185.0,
    "Xeon Gold 6448Y": 225.0,
    "Xeon Gold 6338": 205.0,
    "Xeon Gold 6330": 205.0,
    "Xeon Gold 6248R": 205.0,
    "Xeon Platinum 8280": 205.0,
    "Xeon Platinum 8358": 250.0,
    "Xeon Platinum 8380": 270.0,
    "Xeon Platinum 8462Y+": 300.0,
    "Xeon Platinum 8468": 350.0,
    "Xeon Platinum 8480+": 350.0,
    "EPYC 7742": 225.0,
    "EPYC 7713": 225.0,
    "EPYC 7763": 280.0,
    "EPYC 9554": 360.0,
    "EPYC 9654": 360.0,
}
#: Watts per physical core when the model is not in the table and no ``--cpu-tdp-w`` is given. Per core
#: rather than per socket, because the unknown models are mostly virtual machines and laptops that show a
#: few cores of a larger part: server parts spend 4-10 W a core at TDP (a 350 W, 56-core Xeon 8480+:
#: 6.25 W), laptop parts 4-7 W. The upper end, so that an estimate errs high, never flatters.
DEFAULT_W_PER_CORE = 10.0
#: DRAM power per GiB installed (3 W per 8 GiB).
DRAM_W_PER_GIB = 0.375


def tdp_for_model(model: str) -> float | None:
    """The table's TDP for a ``/proc/cpuinfo`` model name, matching the longest known model first."""
    # "Intel(R) Xeon(R) Gold 6426Y" -> "Intel Xeon Gold 6426Y"
    plain = " ".join(re.sub(r"\((R|TM|tm|r)\)", " ", model).split())
    for known in sorted(CPU_TDP_W, key=len, reverse=True):
        if re.search(re.escape(known) + r"(?![\w+])", plain):
            return CPU_TDP_W[known]
    return None


def read_cpu_times(proc_root: Path) -> tuple[int, int]:
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat``."""
    first = (proc_root / "stat").read_text().splitlines()[0].split()
    if first[0] != "cpu":
        raise ValueError("/proc/stat does not start with the aggregate cpu line")
    values = [int(v) for v in first[1:]]
    # guest and guest_nice are already inside user and nice
    fields = values[:8]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields)
    return total - idle, total


def cpu_topology(proc_root: Path) -> tuple[int, str, int]:
    """``(sockets, model name, physical cores)`` from ``/proc/cpuinfo``; cores fall back to the number
    of processors listed where ``cpu cores`` is missing (some ARM and virtual machines)."""
    sockets: set[str] = set()
    model = "unknown CPU"
    cores_per_socket: dict[str, int] = {}
    processors = 0
    socket = "0"
    for line in (proc_root / "cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            socket = value.strip()
            sockets.add(socket)
        elif key == "cpu cores" and value.strip().isdigit():
            cores_per_socket[socket] = int(value.strip())
        elif key == "model name" and model == "unknown CPU":
            model = value.strip()
    cores = sum(cores_per_socket.values()) or processors or 1
    return max(len(sockets), 1), model, cores


def mem_total_gib(proc_root: Path) -> float:
    for line in (proc_root / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)  # kB -> GiB
    raise ValueError("no MemTotal in /proc/meminfo")


class EstimateSource(PowerSource):
    """Estimated CPU and DRAM power (method ``estimated``), for the components asked for."""

    name = NAME
    estimated = True
    counter_period_s = None

    def __init__(
        self,
        components: Iterable[Component] = (Component.CPU, Component.DRAM),
        *,
        cpu_tdp_w: float | None = None,
        interval_s: float = 0.1,
        proc_root: str | Path = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.components = tuple(c for c in components if c in (Component.CPU, Component.DRAM))
        self.cpu_tdp_w_option = cpu_tdp_w
        self.interval_s = interval_s
        self.proc_root = Path(proc_root)
        self._clock = clock
        self._last: tuple[int, int] | None = None
        self.sockets = 1
        self.cores = 1
        self.model = "unknown CPU"
        self.tdp_w = DEFAULT_W_PER_CORE
        self.tdp_origin = "default"
        self.dram_w = 0.0
        self.mem_gib = 0.0
        self._status: SourceStatus | None = None

    def probe(self) -> SourceStatus:
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> SourceStatus:
        if not self.components:
            return SourceStatus(NAME, False, "nothing to estimate: CPU and DRAM are measured", estimated=True)
        parts: list[str] = []
        try:
            if Component.CPU in self.components:
                self._last = read_cpu_times(self.proc_root)
                self.sockets, self.model, self.cores = cpu_topology(self.proc_root)
                if self.cpu_tdp_w_option is not None:
                    self.tdp_w, self.tdp_origin = self.cpu_tdp_w_option, "--cpu-tdp-w"
                elif (known := tdp_for_model(self.model)) is not None:
                    self.tdp_w, self.tdp_origin = known, f"{self.model} in the TDP table"
                else:
                    # the whole machine as one "socket" of cores x watts per core
                    self.tdp_w = DEFAULT_W_PER_CORE * self.cores
                    self.sockets = 1
                    self.tdp_origin = (
                        f"{self.model} not in the TDP table: {DEFAULT_W_PER_CORE:g} W x {self.cores} "
                        "core(s); --cpu-tdp-w sets it"
                    )
                parts.append(
                    f"CPU = utilisation x {self.tdp_w:g} W TDP ({self.tdp_origin}) x {self.sockets} socket(s)"
                )
            if Component.DRAM in self.components:
                self.mem_gib = mem_total_gib(self.proc_root)
                self.dram_w = self.mem_gib * DRAM_W_PER_GIB
                parts.append(f"DRAM = {self.mem_gib:.1f} GiB x {DRAM_W_PER_GIB} W/GiB")
        except (OSError, ValueError, IndexError) as exc:
            return SourceStatus(NAME, False, f"cannot read {self.proc_root}: {exc}", estimated=True)
        return SourceStatus(
            NAME,
            True,
            "estimated: " + "; ".join(parts),
            components=self.components,
            devices=(DEVICE,),
            estimated=True,
        )

    def read(self) -> list[Reading]:
        t = self._clock()
        out: list[Reading] = []
        if Component.CPU in self.components:
            busy, total = read_cpu_times(self.proc_root)
            if self._last is not None and total > self._last[1]:
                util = (busy - self._last[0]) / (total - self._last[1])
                util = min(max(util, 0.0), 1.0)
                out.append(Reading(t, NAME, Component.CPU, DEVICE, power_w=util * self.tdp_w * self.sockets))
            self._last = (busy, total)
        if Component.DRAM in self.components:
            out.append(Reading(t, NAME, Component.DRAM, DEVICE, power_w=self.dram_w))
        return out

    def device_info(self) -> list[DeviceInfo]:
        out: list[DeviceInfo] = []
        if Component.CPU in self.components:
            out.append(
                DeviceInfo(
                    NAME,
                    Component.CPU,
                    DEVICE,
                    self.model,
                    {
                        "tdp_w": self.tdp_w,
                        "tdp_origin": self.tdp_origin,
                        "sockets": self.sockets,
                        "cores": self.cores,
                    },
                )
            )
        if Component.DRAM in self.components:
            out.append(
                DeviceInfo(
                    NAME,
                    Component.DRAM,
                    DEVICE,
                    "installed memory",
                    {"mem_gib": round(self.mem_gib, 3), "w_per_gib": DRAM_W_PER_GIB},
                )
            )
        return out

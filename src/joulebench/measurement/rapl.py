"""CPU and DRAM energy through RAPL, read from the Linux powercap tree (``/sys/class/powercap``).

Layout (Intel, and AMD with the same driver names)::

    intel-rapl:0        name=package-0     -> CPU, device package-0
    intel-rapl:0:0      name=core          (inside package: never added)
    intel-rapl:0:1      name=uncore        (inside package: never added)
    intel-rapl:0:2      name=dram          -> DRAM, device package-0
    intel-rapl:1        name=psys          -> PLATFORM (contains the packages: reported, never summed)

``intel-rapl-mmio:*`` zones mirror the package zones through another interface and are skipped so that
nothing is counted twice. Each ``energy_uj`` wraps at ``max_energy_range_uj``; the source unwraps it and
polls often enough that no wrap can be missed at a generous maximum power. A drop that this power cannot
explain as a wrap is a reset (a module reload): counting goes on from the last value, and it is flagged.

Since CVE-2020-8694, ``energy_uj`` is readable by root only on most distributions. joulebench never needs
root: the source is then unavailable and says how an administrator can grant read access.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulebench.measurement import fixes
from joulebench.measurement.counter import Unwrapper
from joulebench.measurement.records import Component, DeviceInfo, Reading, SourceStatus
from joulebench.measurement.source import PowerSource

NAME = "rapl"
ROOT_ENV = "JOULEBENCH_POWERCAP_ROOT"
DEFAULT_ROOT = "/sys/class/powercap"
#: RAPL counters update about every millisecond (the nominal period; each machine's is measured at start)
COUNTER_PERIOD_S = 0.001
#: the coarsest RAPL energy unit in use (61 uJ, a DRAM unit on some servers); most packages count 15.3 uJ
RESOLUTION_J = 61e-6
#: a generous upper bound of one zone's power, used only to choose a polling interval that sees every wrap
MAX_ZONE_POWER_W = 1000.0

_ZONE = re.compile(r"^intel-rapl:(\d+)$")
_SUBZONE = re.compile(r"^intel-rapl:(\d+):(\d+)$")


@dataclass(frozen=True)
class RaplZone:
    """One zone joulebench reads."""

    path: Path
    component: Component
    device: str
    max_range_uj: int


def discover_zones(root: Path) -> list[RaplZone]:
    """Package, DRAM and psys zones under ``root`` (core/uncore and mmio mirrors left out)."""
    zones: list[RaplZone] = []
    if not root.is_dir():
        return zones
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        top, sub = _ZONE.match(entry.name), _SUBZONE.match(entry.name)
        if not (top or sub):
            continue
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        if top and name.startswith("package-"):
            comp, device = Component.CPU, name
        elif top and name == "psys":
            comp, device = Component.PLATFORM, "psys"
        elif sub and name == "dram":
            try:
                parent = (root / f"intel-rapl:{sub.group(1)}" / "name").read_text().strip()
            except OSError:
                parent = f"package-{sub.group(1)}"
            comp, device = Component.DRAM, parent
        else:
            continue  # core, uncore and unknown subzones are inside the package: never added
        try:
            max_range = int((entry / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            max_range = 0
        zones.append(RaplZone(entry, comp, device, max_range))
    return zones


def safe_interval_s(max_range_uj: int, max_power_w: float = MAX_ZONE_POWER_W) -> float:
    """Longest polling interval that cannot miss a wrap: half the time to wrap at ``max_power_w``."""
    if max_range_uj <= 0:
        return float("inf")
    return max_range_uj / 1e6 / max_power_w / 2


class RaplSource(PowerSource):
    """CPU packages, their DRAM, and psys (PLATFORM) from powercap energy counters."""

    name = NAME
    counter_period_s = COUNTER_PERIOD_S
    resolution_j = RESOLUTION_J

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        interval_s: float = 0.1,
        max_power_w: float = MAX_ZONE_POWER_W,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root if root is not None else os.environ.get(ROOT_ENV, DEFAULT_ROOT))
        self.requested_interval_s = interval_s
        self.interval_s = interval_s
        self.max_power_w = max_power_w
        self._clock = clock
        self.zones: list[RaplZone] = []
        self._counters: list[Unwrapper] = []
        self._status: SourceStatus | None = None

    def probe(self) -> SourceStatus:
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> SourceStatus:
        if not self.root.is_dir():
            return SourceStatus(
                NAME,
                False,
                f"no powercap tree at {self.root} (no RAPL driver, or not Linux)",
                fix=fixes.rapl_no_driver(),
            )
        zones = discover_zones(self.root)
        if not any(z.component is Component.CPU for z in zones):
            return SourceStatus(
                NAME, False, f"no RAPL package zone under {self.root}", fix=fixes.rapl_no_driver()
            )
        for z in zones:
            try:
                int((z.path / "energy_uj").read_text().strip())
            except PermissionError:
                return SourceStatus(
                    NAME,
                    False,
                    f"{z.path / 'energy_uj'} is not readable by this user",
                    fix=fixes.rapl_permission(str(self.root)),
                )
            except (OSError, ValueError) as exc:
                return SourceStatus(NAME, False, f"{z.path / 'energy_uj'} cannot be read: {exc}")
        self.zones = zones
        limit = self.max_power_w or MAX_ZONE_POWER_W
        self._counters = [Unwrapper(1e-6, z.max_range_uj or None, limit) for z in zones]
        safe = min(safe_interval_s(z.max_range_uj, limit) for z in zones)
        self.interval_s = min(self.requested_interval_s, safe)
        comps = tuple(dict.fromkeys(z.component for z in zones))
        n_pkg = sum(z.component is Component.CPU for z in zones)
        n_dram = sum(z.component is Component.DRAM for z in zones)
        extra = ", psys" if Component.PLATFORM in comps else ""
        return SourceStatus(
            NAME,
            True,
            f"{_plural(n_pkg, 'package zone')}, {_plural(n_dram, 'dram zone')}{extra}",
            components=comps,
            devices=tuple(dict.fromkeys(z.device for z in zones)),
        )

    def read(self) -> list[Reading]:
        out: list[Reading] = []
        for i, z in enumerate(self.zones):
            try:
                raw = int((z.path / "energy_uj").read_text().strip())
            except (OSError, ValueError):
                continue  # a transient read error: the next read interpolates over the gap
            t = self._clock()
            # the polling interval rules out a double wrap; a drop no wrap explains is a reset
            energy_j, reset = self._counters[i].update(raw, t, self.counter_period_s)
            out.append(Reading(t, NAME, z.component, z.device, energy_j=energy_j, counter_reset=reset))
        return out

    @property
    def wraps(self) -> int:
        return sum(c.wraps for c in self._counters)

    @property
    def resets(self) -> int:
        return sum(c.resets for c in self._counters)

    def device_info(self) -> list[DeviceInfo]:
        model = cpu_model_name()
        return [
            DeviceInfo(
                source=NAME,
                component=z.component,
                device=z.device,
                name=model if z.component is Component.CPU else z.path.name,
                attributes={"zone": z.path.name, "max_energy_range_uj": z.max_range_uj},
            )
            for z in self.zones
        ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cpu_model_name(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` ("unknown CPU" when absent)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return "unknown CPU"

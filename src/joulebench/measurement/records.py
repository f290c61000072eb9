"""Records shared by every measurement module. All times are ``time.monotonic()`` seconds.

``CLOCK_MONOTONIC`` is system-wide on Linux, so a stage mark taken in a worker process lines up with
samples taken in the process that measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from joulebench.measurement.fixes import Fix


class Component(str, Enum):
    """What a reading is the power or energy of."""

    GPU = "gpu"
    CPU = "cpu"  # RAPL package-N zones only (never core/uncore/psys added in)
    DRAM = "dram"  # RAPL dram subzones of the packages
    PLATFORM = "platform"  # RAPL psys: contains the packages, reported on its own, never summed
    NODE = "node"  # IPMI DCMI whole-node input power
    OTHER = "other"  # node - (gpu + cpu + dram), derived


class Method(str, Enum):
    """How a window's energy was obtained."""

    COUNTER = "counter"  # difference of a hardware energy counter, interpolated at the edges
    INTEGRATED = "integrated"  # trapezoidal integral of a power timeline
    DERIVED = "derived"  # arithmetic on other measured components (node - parts)
    ESTIMATED = "estimated"  # a model (utilisation x TDP, DRAM size), where nothing measures it


@dataclass(frozen=True)
class SourceStatus:
    """Result of probing a power source: can it be read here, and if not, why."""

    name: str  # "nvml", "rapl", "ipmi", "estimate", "replay"
    available: bool
    reason: str  # why not, or what was found ("2 GPUs, energy counter")
    components: tuple[Component, ...] = ()
    devices: tuple[str, ...] = ()
    estimated: bool = False
    fix: Fix | None = None  # what would make an unreadable source readable


@dataclass(frozen=True)
class Reading:
    """One sample of one device: a cumulative energy counter, a power value, or both.

    ``energy_j`` is the *unwrapped* cumulative counter in joules (wraparound already undone by the
    source); ``power_w`` is an instantaneous or short-average power. ``counter_reset`` marks the first
    read after the counter fell without wrapping (a driver reload): counting went on from the last value.
    """

    t_s: float
    source: str
    component: Component
    device: str
    power_w: float | None = None
    energy_j: float | None = None
    counter_reset: bool = False


@dataclass(frozen=True)
class DeviceInfo:
    """Static and slowly changing facts about a device, recorded at start and end of a measurement."""

    source: str
    component: Component
    device: str
    name: str
    attributes: dict[str, str | float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one component on one device (or ``device="all"`` for the sum) inside one window."""

    component: Component
    device: str
    energy_j: float | None  # None when the window cannot be measured (see flags)
    duration_s: float
    avg_power_w: float | None
    peak_power_w: float | None
    method: Method
    idle_power_w: float | None = None  # from measure_idle(), when taken
    above_idle_energy_j: float | None = None
    flags: tuple[str, ...] = ()  # e.g. "shorter-than-counter-period", "integrated-no-counter"
    #: bound of ``energy_j``'s error from the counter's resolution, its update period at both edges and
    #: any gap (docs/counters.md); ``None`` for estimates, which a model gives without a measured bound
    uncertainty_j: float | None = None

    @property
    def estimated(self) -> bool:
        return self.method is Method.ESTIMATED


@dataclass(frozen=True)
class StageResult:
    """A named window (a lifecycle stage, a repeat, a whole command) and its energy per component."""

    name: str
    start_s: float
    end_s: float
    components: tuple[ComponentEnergy, ...]

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def energy_j(self, component: Component, device: str = "all") -> float | None:
        for c in self.components:
            if c.component is component and c.device == device:
                return c.energy_j
        return None

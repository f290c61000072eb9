"""The power-source seam: one small adapter per way of reading power, behind one interface.

A source is probed once (``probe``), then read by the sampler at ``interval_s``. Sources with a fast
power path (NVML) also expose ``read_power`` at ``power_interval_s``. A source whose read is slow (a
subprocess, like ``ipmitool``) sets ``blocking`` and gets its own sampler thread, so it never delays the
others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from joulebench.measurement.records import DeviceInfo, Reading, SourceStatus
from joulebench.measurement.series import SourceMeta


class PowerSource(ABC):
    """One way of reading power or energy (NVML, RAPL, IPMI, an estimate, a trace)."""

    #: short name used in statuses, readings and traces ("nvml", "rapl", "ipmi", "estimate")
    name: str = ""
    #: seconds between two calls of :meth:`read`
    interval_s: float = 0.1
    #: seconds between two updates of the hardware energy counter; ``None`` when there is no counter
    counter_period_s: float | None = None
    #: seconds between two calls of :meth:`read_power`; ``None`` when the source has no fast power path
    power_interval_s: float | None = None
    #: ``read`` is slow (a subprocess): the sampler gives this source a thread of its own
    blocking: bool = False
    #: values are a model, not a measurement (labelled ``estimated`` everywhere)
    estimated: bool = False

    @abstractmethod
    def probe(self) -> SourceStatus:
        """Can this source be read here? Never raises: an unavailable source says why in ``reason``."""

    @abstractmethod
    def read(self) -> list[Reading]:
        """One sample of every device: cumulative energy (unwrapped) and/or power."""

    def read_power(self) -> list[Reading]:
        """A cheap power-only sample, polled faster than :meth:`read` (default: none)."""
        return []

    def utilization_pct(self) -> dict[str, float]:
        """Per device, the percent of its last sample period in which it ran work (GPUs: kernels); empty
        where the source cannot tell. The idle baseline uses it to catch other work on a device."""
        return {}

    def memory_mib(self) -> dict[str, tuple[int, int]]:
        """Per device, ``(used, total)`` memory in MiB now; empty where the source cannot tell. An engine
        that cannot start is told what else holds its device."""
        return {}

    def device_info(self) -> list[DeviceInfo]:
        """Facts about each device (name, limits, clocks, temperature), taken at start and at end."""
        return []

    def source_metas(self) -> list[SourceMeta]:
        """What accounting needs to know about the readings this source produces (a replay source
        returns the recorded sources' metadata)."""
        return [
            SourceMeta(
                name=self.name,
                interval_s=self.interval_s,
                counter_period_s=self.counter_period_s,
                power_interval_s=self.power_interval_s,
                estimated=self.estimated,
            )
        ]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML shutdown, open files)."""

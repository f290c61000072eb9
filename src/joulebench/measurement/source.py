"""The power-source seam: one small adapter per way of reading power, behind one interface.

A source is probed once (``probe``), then read by the sampler at ``interval_s``. Sources with a fast
power path (NVML) also expose ``read_power`` at ``power_interval_s``. A source whose read is slow (a
subprocess, like ``ipmitool``) sets ``blocking`` and gets its own sampler thread, so it never delays the
others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from joulebench.measurement.counter import measure_period
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
    #: whether ``counter_period_s`` was measured here (:meth:`calibrate`) rather than taken as nominal
    period_measured: bool = False
    #: a generous bound of one device's power: what a gap no read covers may have held
    max_power_w: float | None = None
    #: the counter's smallest step, in joules
    resolution_j: float | None = None
    #: a power reading's smallest step, in watts
    power_resolution_w: float | None = None

    @abstractmethod
    def probe(self) -> SourceStatus:
        """Can this source be read here? Never raises: an unavailable source says why in ``reason``."""

    @abstractmethod
    def read(self) -> list[Reading]:
        """One sample of every device: cumulative energy (unwrapped) and/or power."""

    def calibrate(self, budget_s: float = 2.0) -> None:
        """Measure the counter's update period on this machine by reading it in a loop (an upper
        estimate: see :func:`~joulebench.measurement.counter.measure_period`); where no counter changed
        often enough, the nominal period stays and ``period_measured`` stays false."""
        if self.counter_period_s is None:
            return

        def counters() -> list[tuple[str, float, float]]:
            readings = self.read()
            return [
                (f"{r.component.value}/{r.device}", r.t_s, r.energy_j)
                for r in readings
                if r.energy_j is not None
            ]

        try:
            estimate = measure_period(counters, self.counter_period_s, budget_s=budget_s)
        except Exception:  # a read that fails now fails in the sampler too, which says so; keep the nominal
            return
        self.counter_period_s = estimate.period_s
        self.period_measured = estimate.measured

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
                max_power_w=self.max_power_w,
                resolution_j=self.resolution_j,
                power_resolution_w=self.power_resolution_w,
                period_measured=self.period_measured,
            )
        ]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML shutdown, open files)."""

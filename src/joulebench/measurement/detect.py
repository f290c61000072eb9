"""Which power sources exist, by name, and which of them can be read on this machine."""

from __future__ import annotations

from collections.abc import Iterable

from joulebench.errors import UsageError
from joulebench.measurement.records import Component, SourceStatus
from joulebench.measurement.source import PowerSource

#: every source joulebench knows, in the order they are probed and listed
SOURCE_NAMES = ("nvml", "amdsmi", "rapl", "ipmi", "estimate")
#: measured sources, probed when none are named
MEASURED = ("nvml", "amdsmi", "rapl", "ipmi")


def make_source(
    name: str,
    *,
    interval_s: float = 0.1,
    gpu_power_interval_s: float = 0.02,
    gpu_indices: list[int] | None = None,
    cpu_tdp_w: float | None = None,
    estimate_components: Iterable[Component] = (Component.CPU, Component.DRAM),
) -> PowerSource:
    """A fresh, unprobed source by name; :class:`UsageError` for an unknown name."""
    if name == "nvml":
        from joulebench.measurement.nvml import NvmlSource

        return NvmlSource(
            interval_s=interval_s, power_interval_s=gpu_power_interval_s, gpu_indices=gpu_indices
        )
    if name == "amdsmi":
        from joulebench.measurement.amdsmi import AmdSmiSource

        return AmdSmiSource(
            interval_s=interval_s, power_interval_s=gpu_power_interval_s, gpu_indices=gpu_indices
        )
    if name == "rapl":
        from joulebench.measurement.rapl import RaplSource

        return RaplSource(interval_s=interval_s)
    if name == "ipmi":
        from joulebench.measurement.ipmi import IpmiSource

        return IpmiSource()
    if name == "estimate":
        from joulebench.measurement.estimate import EstimateSource

        return EstimateSource(estimate_components, cpu_tdp_w=cpu_tdp_w, interval_s=interval_s)
    raise UsageError(f"unknown source {name!r}: choose from {', '.join(SOURCE_NAMES)}")


def check_names(names: Iterable[str]) -> list[str]:
    out = []
    for n in names:
        if n not in SOURCE_NAMES:
            raise UsageError(f"unknown source {n!r}: choose from {', '.join(SOURCE_NAMES)}")
        if n not in out:
            out.append(n)
    return out


def missing_for_estimate(statuses: Iterable[SourceStatus]) -> list[Component]:
    """CPU and DRAM unless an available measured source covers them."""
    covered = {c for s in statuses if s.available and not s.estimated for c in s.components}
    return [c for c in (Component.CPU, Component.DRAM) if c not in covered]


def probe_sources(sources: list[PowerSource]) -> list[SourceStatus]:
    """Probe each source; a probe that raises becomes an unavailable status, never an exception."""
    out: list[SourceStatus] = []
    for s in sources:
        try:
            out.append(s.probe())
        except Exception as exc:
            out.append(SourceStatus(s.name, False, f"probe failed: {type(exc).__name__}: {exc}"))
    return out

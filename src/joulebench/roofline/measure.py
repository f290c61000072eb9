"""Measuring a card's limits: its idle power, then each microbenchmark inside a window of the monitor, the
card's own energy counter giving the energy (docs/roofline.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from joulebench.errors import SourceUnavailable
from joulebench.measurement.records import Component, DeviceInfo, StageResult
from joulebench.roofline.kernels import Work


class Kernel(Protocol):
    kernel: str

    def run(self, seconds: float) -> Work: ...


class RooflineMonitor(Protocol):
    def measure_idle(self, seconds: float) -> object: ...
    def window(self, name: str, start_s: float, end_s: float) -> StageResult: ...
    def device_info(self) -> dict[str, list[DeviceInfo]]: ...


@dataclass(frozen=True)
class Target:
    """One card: the torch device its kernels run on and the monitor's name for it."""

    torch_device: str  # cuda:0
    device: str  # gpu0
    name: str  # the card's own name, e.g. "NVIDIA H100 80GB HBM3"
    uuid: str | None = None


@dataclass(frozen=True)
class KernelEnergy:
    """One microbenchmark on one card: its work and the card's energy while it ran."""

    target: Target
    work: Work
    energy_j: float
    uncertainty_j: float | None
    idle_power_w: float | None
    above_idle_energy_j: float | None
    method: str
    flags: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.work.end_s - self.work.begin_s

    @property
    def j_per_unit(self) -> float:
        return self.energy_j / self.work.units

    @property
    def above_idle_j_per_unit(self) -> float | None:
        return None if self.above_idle_energy_j is None else self.above_idle_energy_j / self.work.units

    @property
    def bound_j_per_unit(self) -> float | None:
        """The bound of the per-unit energy: the window's bound (docs/counters.md) over the units."""
        return None if self.uncertainty_j is None else self.uncertainty_j / self.work.units


def gpu_targets(monitor: RooflineMonitor) -> list[Target]:
    """Every GPU the monitor measures, in the order torch numbers them (the visible-device order)."""
    gpus = [d for d in monitor.device_info()["start"] if d.component is Component.GPU]
    return [
        Target(f"cuda:{i}", d.device, d.name, str(d.attributes.get("uuid") or "") or None)
        for i, d in enumerate(gpus)
    ]


def measure(
    monitor: RooflineMonitor,
    targets: Sequence[Target],
    kernels_for: Callable[[Target], Sequence[Kernel]],
    seconds: float,
    idle_s: float,
    progress: Callable[[str], None] = lambda _: None,
) -> list[KernelEnergy]:
    """The idle baseline, then every kernel of every target for ``seconds`` each."""
    progress(f"idle baseline, {idle_s:.0f} s")
    monitor.measure_idle(idle_s)
    out: list[KernelEnergy] = []
    for target in targets:
        for kernel in kernels_for(target):
            progress(f"{target.device} ({target.name}): {kernel.kernel}, {seconds:.0f} s")
            work = kernel.run(seconds)
            window = monitor.window(f"roofline-{work.kernel}", work.begin_s, work.end_s)
            part = next(
                (c for c in window.components if c.component is Component.GPU and c.device == target.device),
                None,
            )
            if part is None or part.energy_j is None or part.estimated:
                why = "no reading" if part is None else ", ".join(part.flags) or "estimated"
                raise SourceUnavailable(
                    f"{target.device}'s energy during the {work.kernel} was not measured ({why})"
                )
            out.append(
                KernelEnergy(
                    target,
                    work,
                    part.energy_j,
                    part.uncertainty_j,
                    part.idle_power_w,
                    part.above_idle_energy_j,
                    part.method.value,
                    part.flags,
                )
            )
    return out

"""What the runner writes: one frozen record per row of `trials`, `stage_energy` and `requests`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joulebench.measurement.records import StageResult
    from joulebench.workloads.spec import Response

#: ``stage_energy.component`` of the row that keeps a window's times when no component could be
#: measured (no energy source on this machine, or ``--no-monitor``); its energy is NULL.
NO_COMPONENT = "none"
NO_SOURCE_FLAG = "no-energy-source"


@dataclass(frozen=True)
class TrialRow:
    kind: str  # setup | generation | warmup (the batch before an engine start's first repeat) | idle
    repeat_index: int
    status: str  # ok | failed
    started_unix_s: float
    duration_s: float | None = None
    error: str | None = None
    cache_state: str | None = None
    compile_cache: str | None = None
    n_requests: int | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageEnergyRow:
    stage: str
    component: str
    device: str
    start_s: float
    end_s: float
    energy_j: float | None
    method: str
    estimated: bool = False
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    idle_power_w: float | None = None
    above_idle_energy_j: float | None = None
    flags: tuple[str, ...] = ()
    uncertainty_j: float | None = None


@dataclass(frozen=True)
class RequestRow:
    request_index: int
    output_tokens: int
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    itl_s: tuple[float, ...] = ()
    error: str | None = None
    submit_s: float | None = None  # the measuring host's monotonic clock, as a window's start_s
    first_token_s: float | None = None
    finish_s: float | None = None
    energy_j: float | None = None  # its share of the repeat's energy (runner/phases.py); None: unknown
    energy_estimated: bool | None = None  # that share includes estimated parts


@dataclass(frozen=True)
class RooflineRow:
    """One microbenchmark on one card (`joulebench roofline`)."""

    created_unix_s: float
    host: str
    joulebench_version: str
    device: str
    device_name: str
    kernel: str
    unit: str
    dtype: str
    units: float
    start_s: float
    end_s: float
    energy_j: float
    method: str
    device_uuid: str | None = None
    uncertainty_j: float | None = None
    idle_power_w: float | None = None
    above_idle_energy_j: float | None = None
    flags: tuple[str, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)


#: Inter-token latencies are stored to the microsecond (a trial holds one per generated token); every
#: figure made from them, the run's own summary included, uses the stored values.
ITL_DECIMALS = 6


def sleep_kind(level: int) -> str:
    """A sleep trial's experiment: each level its own (``sleep-1``, ``sleep-2``), in the report's summary
    and in a time limit's budget alike."""
    return f"sleep-{level}"


def stored_itl(values: Iterable[float]) -> list[float]:
    return [round(x, ITL_DECIMALS) for x in values]


def stage_rows(
    stage: StageResult, name: str | None = None, flags: tuple[str, ...] = ()
) -> list[StageEnergyRow]:
    """Rows of one window, one per (component, device); a single ``none`` row when nothing was measured,
    so that the window's times are kept either way. ``flags`` are added to every row."""
    label = name or stage.name
    rows = [
        StageEnergyRow(
            stage=label,
            component=c.component.value,
            device=c.device,
            start_s=stage.start_s,
            end_s=stage.end_s,
            energy_j=c.energy_j,
            method=c.method.value,
            estimated=c.estimated,
            avg_power_w=c.avg_power_w,
            peak_power_w=c.peak_power_w,
            idle_power_w=c.idle_power_w,
            above_idle_energy_j=c.above_idle_energy_j,
            flags=tuple(c.flags) + flags,
            uncertainty_j=c.uncertainty_j,
        )
        for c in stage.components
    ]
    if not rows:
        rows.append(
            StageEnergyRow(
                stage=label,
                component=NO_COMPONENT,
                device="all",
                start_s=stage.start_s,
                end_s=stage.end_s,
                energy_j=None,
                method=NO_COMPONENT,
                flags=(NO_SOURCE_FLAG, *flags),
            )
        )
    return rows


def request_row(
    response: Response, energy_j: float | None = None, energy_estimated: bool | None = None
) -> RequestRow:
    e2e = None
    if response.finish_s is not None and response.submit_s is not None:
        e2e = response.finish_s - response.submit_s
    return RequestRow(
        request_index=response.index,
        output_tokens=response.output_tokens,
        prompt_tokens=response.prompt_tokens,
        finish_reason=response.finish_reason,
        ttft_s=response.ttft_s,
        tpot_s=response.tpot_s,
        e2e_s=e2e,
        itl_s=response.itl_s,
        error=response.error,
        submit_s=response.submit_s,
        first_token_s=response.first_token_s,
        finish_s=response.finish_s,
        energy_j=energy_j,
        energy_estimated=None if energy_j is None else energy_estimated,
    )

"""Per-repeat metrics of a token-generation trial, from its windows and its responses.

Energy totals follow docs/report.md: the *measured total* is the node when the node is measured,
otherwise the sum of the measured gpu, cpu and dram; estimated components never enter it and appear,
labelled, only in ``total_incl_estimated``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from joulebench.measurement.records import Component, StageResult
from joulebench.runner.steady import SteadyWindow
from joulebench.workloads.spec import Response

PARTS = (Component.GPU, Component.CPU, Component.DRAM)
TOTAL = "total"
TOTAL_INCL_ESTIMATED = "total_incl_estimated"


#: (component, device, energy_j, estimated, uncertainty_j)
EnergyItem = tuple[str, str, "float | None", bool, "float | None"]
#: (energy_j, estimated, uncertainty_j): the bound is None where any part states none (estimates, rows
#: written before bounds were stored)
ComponentTotal = tuple[float, bool, "float | None"]


def stage_items(stage: StageResult) -> list[EnergyItem]:
    return [(c.component.value, c.device, c.energy_j, c.estimated, c.uncertainty_j) for c in stage.components]


def row_items(rows: Iterable[Mapping[str, Any]]) -> list[EnergyItem]:
    """Items of stored ``stage_energy`` rows."""
    return [
        (str(r["component"]), str(r["device"]), r["energy_j"], bool(r["estimated"]), r.get("uncertainty_j"))
        for r in rows
    ]


def _bound(values: Iterable[float | None]) -> float | None:
    vals = list(values)
    return None if any(v is None for v in vals) else float(sum(v for v in vals if v is not None))


def component_energies(items: Iterable[EnergyItem]) -> dict[str, ComponentTotal]:
    """``{component: (energy_j, estimated, uncertainty_j)}`` over all devices, plus the totals; a
    component with an unmeasured device is left out rather than undercounted. Bounds add up: each part
    is off by at most its own."""
    by_comp: dict[str, list[EnergyItem]] = {}
    for item in items:
        by_comp.setdefault(item[0], []).append(item)
    out: dict[str, ComponentTotal] = {}
    for comp, group in by_comp.items():
        use = [i for i in group if i[1] == "all"] or group
        values = [i[2] for i in use]
        if any(v is None for v in values):
            continue
        estimated = any(i[3] for i in use)
        bound = None if estimated else _bound(i[4] for i in use)
        out[comp] = (float(sum(v for v in values if v is not None)), estimated, bound)
    node = out.get(Component.NODE.value)
    if node is not None and not node[1]:
        out[TOTAL] = (node[0], False, node[2])
        return out
    measured = [p.value for p in PARTS if p.value in out and not out[p.value][1]]
    estimated = [p.value for p in PARTS if p.value in out and out[p.value][1]]
    if measured:
        out[TOTAL] = (sum(out[p][0] for p in measured), False, _bound(out[p][2] for p in measured))
    if estimated:
        out[TOTAL_INCL_ESTIMATED] = (sum(out[p][0] for p in measured + estimated), True, None)
    return out


_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM", "node": "whole node"}


def totals_hold(components: Iterable[str], estimated: Iterable[str]) -> dict[str, str]:
    """What each total holds, in words ("GPU only", "GPU + CPU (estimated) + DRAM (estimated)"): a total
    that covers less than the machine must say so, never read as the machine's."""
    present, est = set(components), set(estimated)
    out: dict[str, str] = {}
    if "node" in present and "node" not in est:
        out[TOTAL] = "whole node (IPMI)"
        return out
    parts = [p.value for p in PARTS if p.value in present]
    measured = [p for p in parts if p not in est]
    if measured:
        out[TOTAL] = " + ".join(_NAMES[p] for p in measured) + (" only" if len(measured) == 1 else "")
    if any(p in est for p in parts):
        out[TOTAL_INCL_ESTIMATED] = " + ".join(
            _NAMES[p] + (" (estimated)" if p in est else "") for p in parts
        )
    return out


def ran_paused(config: Mapping[str, Any], details: Mapping[str, Any]) -> bool:
    """A generation repeat of a monitored run that ran with the sampler paused (``--unmonitored-repeats``):
    its throughput, set beside the measured repeats', is the monitor's own cost."""
    return details.get("monitored") is False and config.get("monitor", True) is not False


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def repeat_metrics(
    window: StageResult, responses: Sequence[Response], steady: SteadyWindow, steady_stage: StageResult | None
) -> dict[str, Any]:
    """Flat ``{metric: value}`` of one repeat; energy metrics are keyed ``<metric>.<component>``."""
    ok = [r for r in responses if r.error is None]
    tokens = sum(r.output_tokens for r in ok)
    duration = window.duration_s
    m: dict[str, Any] = {
        "duration_s": duration,
        "output_tokens": tokens,
        "n_requests": len(responses),
        "failed_requests": len(responses) - len(ok),
        "tokens_per_s": tokens / duration if duration > 0 else None,
        "ttft_s": _mean([r.ttft_s for r in ok if r.ttft_s is not None]),
        "tpot_s": _mean([r.tpot_s for r in ok if r.tpot_s is not None]),
        "itl_s": _mean([x for r in ok for x in r.itl_s]),
    }
    m.update(energy_metrics(window, tokens, len(ok)))
    m["steady_available"] = steady.available
    m["steady_reason"] = steady.reason
    if steady.available and steady.duration_s:
        m["steady.duration_s"] = steady.duration_s
        m["steady.output_tokens"] = steady.output_tokens
        m["steady.tokens_interpolated"] = steady.tokens_interpolated
        m["steady.tokens_per_s"] = (steady.output_tokens or 0) / steady.duration_s
        if steady_stage is not None:
            m.update(steady_energy_metrics(steady_stage, steady.duration_s, steady.output_tokens))
    return m


def energy_metrics(window: StageResult, tokens: int, responses: int) -> dict[str, Any]:
    """A repeat's energy metrics per component (and ``estimated_components``): each energy over the
    window's duration, its output tokens and its successful responses, with the measurement's own bound
    (docs/counters.md) over the same divisors, apart from the spread between repeats."""
    duration = window.duration_s
    m: dict[str, Any] = {}
    estimated: list[str] = []
    for comp, (energy, is_est, bound) in component_energies(stage_items(window)).items():
        for prefix, value in (("", energy), ("bound.", bound)):
            if value is None:
                continue
            m[f"{prefix}energy_j.{comp}"] = value
            m[f"{prefix}power_w.{comp}"] = value / duration if duration > 0 else None
            m[f"{prefix}j_per_token.{comp}"] = value / tokens if tokens else None
            m[f"{prefix}j_per_response.{comp}"] = value / responses if responses else None
        if is_est:
            estimated.append(comp)
    m["estimated_components"] = estimated
    return m


def steady_energy_metrics(stage: StageResult, duration_s: float, tokens: float | None) -> dict[str, Any]:
    """Power and J/token of the steady-state window, per component."""
    m: dict[str, Any] = {}
    for comp, (energy, _, _) in component_energies(stage_items(stage)).items():
        m[f"steady.power_w.{comp}"] = energy / duration_s
        m[f"steady.j_per_token.{comp}"] = energy / tokens if tokens else None
    return m

"""Energy totals of a window, the same for a run's summary, the report and the advisor.

The *measured total* is the node when the node is measured, otherwise the sum of the measured gpu, cpu
and dram; estimated components never enter it and appear, labelled, only in ``total_incl_estimated``
(docs/report.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from joulebench.measurement.records import Component, StageResult

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


def row_items(rows: Iterable[Mapping[str, Any]], column: str = "energy_j") -> list[EnergyItem]:
    """Items of stored ``stage_energy`` rows, of their ``energy_j`` or another energy column of theirs
    (``above_idle_energy_j``); NULL read through a DataFrame (NaN) is None."""
    return [
        (str(r["component"]), str(r["device"]), stored_number(r[column]), bool(r["estimated"]),
         stored_number(r.get("uncertainty_j")))
        for r in rows
    ]  # fmt: skip


def stored_number(value: Any) -> float | None:
    """A stored number; None for NULL, which a DataFrame gives as NaN."""
    return None if value is None or value != value else float(value)


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
        guessed = any(i[3] for i in use)
        bound = None if guessed else _bound(i[4] for i in use)
        out[comp] = (float(sum(v for v in values if v is not None)), guessed, bound)
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


def headline_key(energies: Mapping[str, object]) -> str | None:
    """The total a figure is given by: the measured one, else (said estimated) the one with estimates;
    ``None`` where neither exists."""
    return TOTAL if TOTAL in energies else TOTAL_INCL_ESTIMATED if TOTAL_INCL_ESTIMATED in energies else None


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

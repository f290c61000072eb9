"""The result of `joulebench measure`: one document (docs/measure-json.md) and its text rendering."""

from __future__ import annotations

from typing import Any

from joulebench.measurement.fixes import for_estimates
from joulebench.measurement.records import ComponentEnergy, SourceStatus, StageResult
from joulebench.measurement.serialize import device_info_dict, stage_dict, status_dict

SCHEMA = "joulebench.measure/1"


def build_document(
    *,
    total: StageResult,
    stages: list[StageResult],
    statuses: list[SourceStatus],
    devices: dict[str, list[Any]],
    command: list[str] | None,
    exit_code: int | None,
    interval_ms: float | None,
    replay: str | None = None,
    trace: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "command": command,
        "exit_code": exit_code,
        "replay": replay,
        "interval_ms": interval_ms,
        "duration_s": total.duration_s,
        "sources": [status_dict(s) for s in statuses],
        "total": stage_dict(total),
        "stages": [stage_dict(s) for s in stages],
        "devices": {when: [device_info_dict(d) for d in infos] for when, infos in devices.items()},
        "trace": trace,
        "warnings": list(warnings or []),
    }


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rows(result: StageResult) -> list[ComponentEnergy]:
    """The ``all`` row of each component, and per-device rows where a component has several devices."""
    by_comp: dict[str, list[ComponentEnergy]] = {}
    for c in result.components:
        by_comp.setdefault(c.component.value, []).append(c)
    out: list[ComponentEnergy] = []
    for rows in by_comp.values():
        devices = [r for r in rows if r.device != "all"]
        total = [r for r in rows if r.device == "all"]
        if len(devices) > 1:
            out.extend(devices)
        out.extend(total or devices)
    return out


def _table(result: StageResult) -> list[str]:
    rows = _rows(result)
    if not rows:
        return [f"  {result.name}: {result.duration_s:.3f} s, no energy measured"]
    lines = [f"  {result.name}: {result.duration_s:.3f} s"]
    lines.append(
        f"    {'component':<10} {'device':<10} {'energy_j':>12} {'± j':>9} {'avg_w':>9} {'peak_w':>9}  method"
    )
    for c in rows:
        label = c.method.value + (" (estimated)" if c.estimated and c.method.value != "estimated" else "")
        flags = (
            f"  [{', '.join(f for f in c.flags if f != 'estimated')}]" if set(c.flags) - {"estimated"} else ""
        )
        lines.append(
            f"    {c.component.value:<10} {c.device:<10} {_num(c.energy_j):>12} {_num(c.uncertainty_j):>9} "
            f"{_num(c.avg_power_w):>9} {_num(c.peak_power_w):>9}  {label}{flags}"
        )
    return lines


def render_text(
    doc_total: StageResult, stages: list[StageResult], statuses: list[SourceStatus], head: str
) -> str:
    lines = [head, "sources:"]
    for s in statuses:
        state = "available" if s.available else "unavailable"
        lines.append(f"  {s.name:<9} {state:<11} {s.reason}")
    if not any(s.available for s in statuses):
        lines.append("  no source available: only the duration is measured")
    # what would measure, instead, the components that were estimated
    estimated = {c.value for s in statuses if s.available and s.estimated for c in s.components}
    unreadable = [(s.name, s.fix) for s in statuses if not s.available and s.fix is not None]
    lines += [
        f"  to measure instead of estimate: {fix.line()}" for _, fix in for_estimates(unreadable, estimated)
    ]
    lines.append("energy (± j: the bound of each figure's error, docs/counters.md):")
    lines += _table(doc_total)
    for st in stages:
        lines += _table(st)
    return "\n".join(lines)

"""Plain-dict forms of measurement records, for JSON output (docs/measure-json.md) and storage."""

from __future__ import annotations

from typing import Any

from joulebench.measurement.records import ComponentEnergy, DeviceInfo, SourceStatus, StageResult


def component_dict(c: ComponentEnergy) -> dict[str, Any]:
    return {
        "component": c.component.value,
        "device": c.device,
        "energy_j": c.energy_j,
        "uncertainty_j": c.uncertainty_j,
        "duration_s": c.duration_s,
        "avg_power_w": c.avg_power_w,
        "peak_power_w": c.peak_power_w,
        "idle_power_w": c.idle_power_w,
        "above_idle_energy_j": c.above_idle_energy_j,
        "method": c.method.value,
        "estimated": c.estimated,
        "flags": list(c.flags),
    }


def stage_dict(s: StageResult) -> dict[str, Any]:
    return {
        "name": s.name,
        "start_s": s.start_s,
        "end_s": s.end_s,
        "duration_s": s.duration_s,
        "components": [component_dict(c) for c in s.components],
    }


def status_dict(s: SourceStatus) -> dict[str, Any]:
    return {
        "name": s.name,
        "available": s.available,
        "reason": s.reason,
        "components": [c.value for c in s.components],
        "devices": list(s.devices),
        "estimated": s.estimated,
        **({"fix": {"why": s.fix.why, "commands": list(s.fix.commands)}} if s.fix else {}),
    }


def device_info_dict(d: DeviceInfo) -> dict[str, Any]:
    return {
        "source": d.source,
        "component": d.component.value,
        "device": d.device,
        "name": d.name,
        "attributes": dict(d.attributes),
    }

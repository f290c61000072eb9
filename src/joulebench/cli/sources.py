"""`joulebench sources`: which power sources this machine can read, and why not; and whether another
process is using a measured device right now."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from joulebench.measurement.source import PowerSource


def sources(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    estimate: bool = typer.Option(
        True, "--estimate/--no-estimate", help="Also probe the CPU/DRAM estimate source (the default)."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Print a script, to run as root, that makes the unreadable sources readable."
    ),
) -> None:
    """List every power source (nvml, amdsmi, rapl, ipmi, estimate) with its status, the reason and, for
    each one that cannot be read, the fix; and each GPU's utilisation and memory in use now."""
    from joulebench.measurement.detect import MEASURED, make_source, missing_for_estimate, probe_sources
    from joulebench.measurement.records import SourceStatus
    from joulebench.measurement.serialize import status_dict

    measured = [make_source(n) for n in MEASURED]
    statuses = probe_sources(measured)
    now = {s.name: _devices_now(src) for src, s in zip(measured, statuses, strict=True) if s.available}
    for src in measured:
        src.close()
    if fix:
        from joulebench.measurement.fixes import script

        print(script((s.name, s.fix) for s in statuses if not s.available and s.fix is not None), end="")
        return
    if estimate:
        est = make_source("estimate", estimate_components=missing_for_estimate(statuses))
        statuses += probe_sources([est])
    else:
        statuses.append(SourceStatus("estimate", False, "turned off (--no-estimate)", estimated=True))
    if as_json:
        docs = [status_dict(s) | ({"devices_now": now[s.name]} if now.get(s.name) else {}) for s in statuses]
        print(json.dumps(docs, indent=2))
        return
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        state = "available" if s.available else "unavailable"
        print(f"{s.name:<{width}}  {state:<11}  {s.reason}")
        if not s.available and s.fix is not None:
            print(f"{'':<{width}}  {'':<11}  fix: {s.fix.line()}")
        for device, load in (now.get(s.name) or {}).items():
            print(f"{'':<{width}}  {'':<11}  {_load_line(device, load)}")
    if any(not s.available and s.fix is not None and s.fix.commands for s in statuses):
        print("joulebench sources --fix > fix.sh writes these fixes as one script: read it, run it as root")


def _devices_now(source: PowerSource) -> dict[str, dict[str, float | int]]:
    """Per device, what the source can tell of its load now: utilisation and memory in use."""
    out: dict[str, dict[str, float | int]] = {}
    for device, pct in source.utilization_pct().items():
        out.setdefault(device, {})["utilization_pct"] = pct
    for device, (used, total) in source.memory_mib().items():
        out.setdefault(device, {}).update(memory_used_mib=used, memory_total_mib=total)
    return out


def _load_line(device: str, load: dict[str, float | int]) -> str:
    from joulebench.measurement.occupancy import busy, held

    parts, in_use = [], False
    if "utilization_pct" in load:
        pct = float(load["utilization_pct"])
        parts.append(f"{pct:.0f} % busy")
        in_use |= bool(busy({device: pct}))
    if "memory_used_mib" in load:
        used, total = int(load["memory_used_mib"]), int(load["memory_total_mib"])
        parts.append(f"{used:,} of {total:,} MiB in use")
        in_use |= bool(held({device: (used, total)}))
    warning = "; another process is using it: a measurement now includes its work" if in_use else ""
    return f"{device}: {', '.join(parts)}{warning}"


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command("sources")(sources)

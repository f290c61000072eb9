"""`joulebench sources`: which power sources this machine can read, and why not."""

from __future__ import annotations

import json

import typer


def sources(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    estimate: bool = typer.Option(False, "--estimate", help="Also probe the CPU/DRAM estimate source."),
) -> None:
    """List every power source (nvml, rapl, ipmi, estimate) with its status and the reason."""
    from joulebench.measurement.detect import MEASURED, make_source, missing_for_estimate, probe_sources
    from joulebench.measurement.records import SourceStatus
    from joulebench.measurement.serialize import status_dict

    measured = [make_source(n) for n in MEASURED]
    statuses = probe_sources(measured)
    for src in measured:
        src.close()
    if estimate:
        est = make_source("estimate", estimate_components=missing_for_estimate(statuses))
        statuses += probe_sources([est])
    else:
        statuses.append(SourceStatus("estimate", False, "not requested (use --estimate)", estimated=True))
    if as_json:
        print(json.dumps([status_dict(s) for s in statuses], indent=2))
        return
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        state = "available" if s.available else "unavailable"
        print(f"{s.name:<{width}}  {state:<11}  {s.reason}")


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command("sources")(sources)

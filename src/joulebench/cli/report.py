"""`joulebench report`: tables, figures, exports and a self-contained HTML page from the results database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from joulebench.store.frames import DEFAULT_DB_PATH


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command()(report)


def report(
    db: Annotated[Path, typer.Option(help="The results database.")] = DEFAULT_DB_PATH,
    out: Annotated[Path, typer.Option(help="Folder for report.html, the figures and the exports.")] = Path(
        "joulebench-report"
    ),
    runs: Annotated[
        str | None,
        typer.Option(
            help="Which runs: key=value pairs joined by commas, e.g. engine=vllm,id=3..7 (docs/report.md)."
        ),
    ] = None,
    timeline_run: Annotated[
        int | None,
        typer.Option(help="The run whose power timeline is drawn (default: the first with a trace)."),
    ] = None,
    policy_requests_per_day: Annotated[
        float,
        typer.Option(
            help="The arrival rate of the policy figure, where engines were parked (see advise --policy)."
        ),
    ] = 1000.0,
    policy_burstiness: Annotated[
        float, typer.Option(help="Its gaps' coefficient of variation (1: Poisson arrivals).")
    ] = 1.0,
    portable: Annotated[
        bool, typer.Option("--portable", help="Leave the machine's paths out, to publish the report.")
    ] = False,
) -> None:
    """Write an HTML report (tables with 95 % CIs, Figs. 1-5, a power timeline) and CSV/JSON/Parquet data."""
    from joulebench.report.build import build_report
    from joulebench.report.policy import Arrivals

    arrivals = Arrivals.from_rate(policy_requests_per_day, policy_burstiness, flags="--policy-")
    files = build_report(db, out, runs=runs, timeline_run=timeline_run, portable=portable, arrivals=arrivals)
    print(f"report: {files.html}")
    print(f"figures: {len(files.figures)} (PNG and SVG) in {out}")
    print(f"exports: {', '.join(sorted({p.stem for p in files.exports}))} as CSV, JSON and Parquet in {out}")

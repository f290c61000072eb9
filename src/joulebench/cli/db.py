"""`joulebench db`: work on a results database as a whole."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

db_app = typer.Typer(
    name="db", help="Work on a results database as a whole.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    """Add this command group to the CLI."""
    app.add_typer(db_app)


@db_app.command()
def recompute(
    db: Annotated[Path, typer.Argument(help="The results database to compute again (changed in place).")],
) -> None:
    """Compute every stored window again from its trial's trace with this release's accounting rule
    (docs/counters.md), with its uncertainty, and the repeats' energy metrics from them; the roofline
    rows likewise from theirs. Run times, idle baselines, tokens and the runner's flags stay as they were;
    a trial or roofline row without a trace (or whose trace holds no reading of its GPU) keeps its values."""
    from joulebench.errors import UsageError
    from joulebench.runner.recompute import recompute as run
    from joulebench.store.db import ResultsDB

    if not db.is_file():
        raise UsageError(f"{db}: no such database file")

    def progress(done: int, total: int) -> None:
        if done % 20 == 0:
            print(f"trial {done + 1} of {total}", file=sys.stderr, flush=True)

    with ResultsDB(db) as results:
        summary = run(results, progress)
    roofline = ""
    if summary.roofline or summary.roofline_without_trace or summary.roofline_unmeasured:
        roofline = (
            f"; {summary.roofline} roofline rows computed again, "
            f"{summary.roofline_without_trace} without a trace kept as they were"
        )
        if summary.roofline_unmeasured:
            roofline += (
                f", {summary.roofline_unmeasured} whose trace holds no energy reading of their GPU kept "
                "as they were"
            )
    print(
        f"{db}: {summary.trials} trials computed again ({summary.windows} windows), "
        f"{summary.without_trace} without a trace kept as they were{roofline}; "
        f"largest change of a measured energy {summary.largest_change:.2%}"
    )


@db_app.command()
def merge(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="The databases to merge, read from a private copy and never written (an older schema "
            "is brought up to date in the copy); .db.gz files are decompressed into it."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged database (new, or one to add to).")],
) -> None:
    """Copy every run of the given databases into one (``-o``), for one report over several machines.
    Each run keeps its values, times and machine, and records where it came from (``merged_from``); a run
    already in the target is not copied twice."""
    from joulebench.errors import UsageError
    from joulebench.store.db import ResultsDB
    from joulebench.store.merge import merge as run
    from joulebench.store.merge import readable

    problems = [f"{s}: no such database file" for s in sources if not s.is_file()]
    resolved = {s.resolve() for s in sources}
    if out.exists() and out.resolve() in resolved:
        problems.append(f"--out {out} is one of the databases to merge")
    if len(resolved) < len(sources):
        problems.append("a database is named twice")
    if problems:
        raise UsageError("\n".join(problems))
    for source in sources:  # each one ours, before the target is made
        with readable(source) as path:
            ResultsDB(path).close()
    with ResultsDB(out) as target:
        merged = run(target, sources)
    parts = ", ".join(f"{n} from {name}" for name, n in merged.by_source.items())
    print(f"{out}: {merged.copied} runs merged ({parts}); {merged.already_there} already there")

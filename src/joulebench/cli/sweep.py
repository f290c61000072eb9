"""`joulebench sweep PLAN.yaml...`: run every cell of one or more plans (engine x model x workload)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from joulebench.sweep.cells import Cell
    from joulebench.sweep.driver import Executor
    from joulebench.sweep.plan import Plan

EXECUTORS = ("local", "ray")
# Exit code of a sweep that left cells at its time limit (and failed none): run it again with --resume.
EXIT_TIME_LIMIT = 3


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command()(sweep)


def sweep(
    plans: Annotated[
        list[Path],
        typer.Argument(
            help="Sweep plans (YAML): engines, models, workloads, repeats. Several plans run as one sweep "
            "into one database (with --executor ray, side by side on the GPUs they need).",
            metavar="PLAN...",
        ),
    ],
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Skip cells finished in --db; of a cell begun there, run only what it lacks."
        ),
    ] = False,
    executor: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster).")] = "local",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the trials and an estimate; run nothing.")
    ] = False,
    db: Annotated[Path, typer.Option(help="The results database.")] = Path("joulebench.db"),
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (auto, or HEAD:6379); default: RAY_ADDRESS or a private one."),
    ] = None,
    max_retries: Annotated[int, typer.Option(help="Extra attempts for a cell whose run failed.")] = 2,
    time_limit: Annotated[
        str | None,
        typer.Option(
            help="End within this time (90s, 25m, 1h30m): no trial starts that its estimate ends past it, "
            "a trial still running at the limit is stopped; exit 3 when cells are left for --resume.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the engines' own output too, not only in the logs.")
    ] = False,
) -> None:
    """Run sweep plans; each cell is one run in the database, keyed for --resume."""
    from joulebench.errors import UsageError
    from joulebench.sweep.plan import PlanError

    started = time.time()  # the limit counts from here: loading plans and engines is time spent too
    limit_s = None if time_limit is None else parse_duration_s(time_limit, "--time-limit")
    end_unix_s = None if limit_s is None else started + limit_s
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if max_retries < 0:
        raise UsageError("--max-retries must not be negative")
    if ray_address is not None and executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    try:
        loaded = _load(plans)
        if dry_run and executor == "local":
            _dry_run(loaded, _local(), db, resume, limit_s)
            return
        runner = _local() if executor == "local" else _ray(ray_address)
        try:
            if dry_run:
                _dry_run(loaded, runner, db, resume, limit_s)
            else:
                _run(loaded, runner, db, resume, max_retries, verbose, end_unix_s)
        finally:
            runner.close()
    except PlanError as exc:
        for problem in exc.problems:
            print(f"joulebench: error: {problem}", file=sys.stderr)
        raise typer.Exit(2) from None


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration_s(text: str, option: str) -> float:
    """``90``, ``90s``, ``25m``, ``1h30m``, ``1.5h`` in seconds; anything else is one line of usage error."""
    from joulebench.errors import UsageError

    clean = text.strip().lower()
    match = _DURATION.fullmatch(clean)
    # "1h30" could mean minutes or seconds: a number after another unit needs its own
    unclear = match is not None and match.group(3) and (match.group(1) or match.group(2))
    if not clean or match is None or not any(match.groups()) or (unclear and not clean.endswith("s")):
        raise UsageError(f"{option} takes a duration such as 90s, 25m or 1h30m, not {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError(f"{option} must be longer than 0 s")
    return total


def _load(paths: list[Path]) -> list[Plan]:
    """Every plan, with every plan's problems reported together."""
    from joulebench.sweep.plan import PlanError, load_plan

    plans: list[Plan] = []
    problems: list[str] = []
    for path in paths:
        try:
            plans.append(load_plan(path))
        except PlanError as exc:
            problems += exc.problems
    if problems:
        raise PlanError(problems)
    return plans


def _run(
    plans: list[Plan],
    executor: Executor,
    db_path: Path,
    resume: bool,
    max_retries: int,
    verbose: bool,
    end_unix_s: float | None,
) -> None:
    import os

    from joulebench.cli.capture import new_log_dir, to_log
    from joulebench.cli.signals import TimeLimitReached, terminate_as_interrupt, time_limit_as_interrupt
    from joulebench.runner.run import LOG_DIR_ENV
    from joulebench.store.db import ResultsDB
    from joulebench.sweep.driver import plans_cells, run_sweep

    left_out: list[str] = []
    cells = plans_cells(plans, executor.gpus_per_node(), left_out=left_out)
    for line in left_out:
        print(line, flush=True)
    db = ResultsDB(db_path)  # a database that is not ours is refused before a log folder is made
    log_dir = new_log_dir(db_path, "sweep")
    os.environ[LOG_DIR_ENV] = str(log_dir)  # every run of the sweep keeps its engines' logs here
    try:
        with db, to_log(log_dir / "joulebench.log", enabled=not verbose) as streams:

            def say(line: str) -> None:
                print(line, file=streams.out, flush=True)

            db.on_busy = lambda m: say(f"warning: {m}")
            try:
                with terminate_as_interrupt(), time_limit_as_interrupt(end_unix_s):
                    result = run_sweep(
                        cells, db, executor, resume=resume, max_retries=max_retries, say=say,
                        end_unix_s=end_unix_s,
                    )  # fmt: skip
            except TimeLimitReached:
                print(
                    f"joulebench: the time limit was reached with a trial still running, which is lost; "
                    f"finished trials are kept in {db_path}: `joulebench sweep --resume` runs what is left; "
                    f"logs: {log_dir}",
                    file=streams.err,
                )
                raise typer.Exit(EXIT_TIME_LIMIT) from None
            except KeyboardInterrupt:
                print(
                    f"joulebench: interrupted; finished trials are kept in {db_path}: "
                    f"`joulebench sweep --resume` runs what is left; logs: {log_dir}",
                    file=streams.err,
                )
                raise typer.Exit(130) from None
            names = ", ".join(p.name for p in plans)
            say(f"sweep {names}: {result.summary}; results in {db_path}; logs: {log_dir}")
    finally:
        os.environ.pop(LOG_DIR_ENV, None)
    if result.count("failed"):
        raise typer.Exit(1)
    if result.count("later"):
        raise typer.Exit(EXIT_TIME_LIMIT)


def _dry_run(
    plans: list[Plan], executor: Executor, db_path: Path, resume: bool, limit_s: float | None
) -> None:
    from joulebench.sweep.driver import plans_cells

    here: list[str] = []
    left_out: list[str] = []
    cells = plans_cells(plans, executor.gpus_per_node(), here, left_out)
    print("\n".join([*left_out, *_dry_run_lines(cells, db_path, resume, limit_s)]))
    if here:
        # a plan for another machine checks clean here; what this one lacks is said, not refused
        print(f"not runnable on this machine ({len(here)}); a run here would refuse it:")
        print("\n".join(f"  {line}" for line in here))


def _dry_run_lines(cells: list[Cell], db_path: Path, resume: bool, limit_s: float | None) -> list[str]:
    from joulebench.sweep.driver import pending_cells
    from joulebench.sweep.dryrun import dry_run_lines

    if not db_path.is_file():  # a dry run never creates a database
        return dry_run_lines(cells, pending_cells(cells, None, resume=False), None, limit_s)
    from joulebench.store.db import ResultsDB

    with ResultsDB(db_path) as db:
        return dry_run_lines(cells, pending_cells(cells, db, resume), db, limit_s)


def _local() -> Executor:
    from joulebench.sweep.local import LocalExecutor

    return LocalExecutor()


def _ray(address: str | None) -> Executor:
    from joulebench.sweep.ray_executor import RayExecutor

    return RayExecutor(address)

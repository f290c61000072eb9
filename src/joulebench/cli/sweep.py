"""`joulebench sweep PLAN.yaml`: run every cell of a plan (engine x model x workload), resumably."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from joulebench.sweep.cells import Cell
    from joulebench.sweep.driver import Executor
    from joulebench.sweep.plan import Plan

EXECUTORS = ("local", "ray")


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command()(sweep)


def sweep(
    plan: Annotated[Path, typer.Argument(help="The sweep plan (YAML): engines, models, workloads, repeats.")],
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
) -> None:
    """Run a sweep plan; each cell is one run in the database, keyed for --resume."""
    from joulebench.errors import UsageError
    from joulebench.sweep.plan import PlanError, load_plan

    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if max_retries < 0:
        raise UsageError("--max-retries must not be negative")
    if ray_address is not None and executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    try:
        loaded = load_plan(plan)
        if dry_run and executor == "local":
            _dry_run(loaded, _local(), db, resume)
            return
        runner = _local() if executor == "local" else _ray(ray_address)
        try:
            if dry_run:
                _dry_run(loaded, runner, db, resume)
            else:
                _run(loaded, runner, db, resume, max_retries)
        finally:
            runner.close()
    except PlanError as exc:
        for problem in exc.problems:
            print(f"joulebench: error: {problem}", file=sys.stderr)
        raise typer.Exit(2) from None


def _run(plan: Plan, executor: Executor, db_path: Path, resume: bool, max_retries: int) -> None:
    from joulebench.cli.signals import terminate_as_interrupt
    from joulebench.store.db import ResultsDB
    from joulebench.sweep.driver import plan_cells, run_sweep

    cells = plan_cells(plan, executor.gpus_per_node())
    try:
        with terminate_as_interrupt(), ResultsDB(db_path) as db:
            result = run_sweep(cells, db, executor, resume=resume, max_retries=max_retries, say=_say)
    except KeyboardInterrupt:
        print(
            f"joulebench: interrupted; finished trials are kept in {db_path}: "
            "`joulebench sweep --resume` runs what is left",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None
    print(f"sweep {plan.name}: {result.summary}; results in {db_path}")
    if result.count("failed"):
        raise typer.Exit(1)


def _dry_run(plan: Plan, executor: Executor, db_path: Path, resume: bool) -> None:
    from joulebench.sweep.driver import plan_cells

    cells = plan_cells(plan, executor.gpus_per_node())
    print("\n".join(_dry_run_lines(cells, db_path, resume)))


def _dry_run_lines(cells: list[Cell], db_path: Path, resume: bool) -> list[str]:
    from joulebench.sweep.driver import pending_cells
    from joulebench.sweep.dryrun import dry_run_lines

    if not db_path.is_file():  # a dry run never creates a database
        return dry_run_lines(cells, pending_cells(cells, None, resume=False), None)
    from joulebench.store.db import ResultsDB

    with ResultsDB(db_path) as db:
        return dry_run_lines(cells, pending_cells(cells, db, resume), db)


def _say(line: str) -> None:
    print(line, flush=True)


def _local() -> Executor:
    from joulebench.sweep.local import LocalExecutor

    return LocalExecutor()


def _ray(address: str | None) -> Executor:
    from joulebench.sweep.ray_executor import RayExecutor

    return RayExecutor(address)

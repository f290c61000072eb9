"""What became of each cell, and the retry rule both executors share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.errors import OUT_OF_MEMORY_HINT
from joulebench.runner.run import OUT_OF_MEMORY_STRIKES
from joulebench.sweep.cells import Cell
from joulebench.sweep.failures import has_run_since, record_failure
from joulebench.sweep.state import remainder, tally

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"  # finished by an earlier sweep (--resume)
LATER = "later"  # stopped or not begun at the sweep's time limit: --resume runs the rest
NOT_BEGUN = "not begun: the time left would not hold its first trial"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    status: str  # ok | failed | skipped | later
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class Settled:
    outcomes: list[Outcome]  # cells that need no further attempt
    retry: list[Cell]  # cells to run again


def settle(
    db: ResultsDB,
    cells: list[Cell],
    attempt: int,
    max_retries: int,
    error: str | None,
    since_unix_s: float,
    attempt_since_unix_s: float,
    timed: bool = False,
) -> Settled:
    """After attempt number ``attempt`` (1-based) of ``cells``, begun at ``attempt_since_unix_s``: which
    finished, which get another try (at most ``max_retries`` after the first), which are given up as
    failed. A cell given up without any run since ``since_unix_s`` (it failed before the runner wrote one)
    is recorded as a failed run. Another try runs only what this attempt left: a cell cut off after two of
    three repeats retries the third, as ``--resume`` would. Under a time limit (``timed``) a cell that the
    runner stopped at the limit, or did not begin for it, is left for later, not retried."""
    outcomes: list[Outcome] = []
    retry: list[Cell] = []
    for cell in cells:
        # Only this attempt's runs count: without --resume, a cell that an earlier sweep finished is measured
        # anew, and an earlier attempt of this sweep left ``cell.config`` as what it still lacked.
        rest = remainder(cell.config, tally(db, cell.key, attempt_since_unix_s))
        if rest is None:
            outcomes.append(Outcome(cell, OK, attempt))
            continue
        later = _left_for_later(db, cell.key, attempt_since_unix_s, error) if timed else None
        if later is not None:
            outcomes.append(Outcome(cell, LATER, attempt, later))
            continue
        out_of_memory = _ran_out_of_memory(db, cell.key, since_unix_s)
        if attempt <= max_retries and not out_of_memory:
            retry.append(replace(cell, config=rest))
        else:
            reason = error or _last_error(db, cell.key) or "the run did not finish ok"
            if out_of_memory:  # another attempt needs as much memory: not retried
                reason = f"{reason}; {OUT_OF_MEMORY_HINT}"
            if not has_run_since(db, cell.key, since_unix_s):
                record_failure(db, cell, reason, attempt)
            outcomes.append(Outcome(cell, FAILED, attempt, reason))
    return Settled(outcomes, retry)


def _left_for_later(db: ResultsDB, key: str, attempt_since_unix_s: float, error: str | None) -> str | None:
    """Why the time limit left the cell unfinished in this attempt, or None if it was not the limit: its
    run stopped at the limit (the runner's verdict, stored with the run), or no run was begun and nothing
    failed."""
    runs = [r for r in db.runs(sweep_key=key) if r["created_unix_s"] >= attempt_since_unix_s]
    if not runs:
        return None if error else NOT_BEGUN
    reason = (runs[-1].get("environment") or {}).get("time_limit")
    return str(reason) if reason else None


def _ran_out_of_memory(db: ResultsDB, key: str, since_unix_s: float) -> bool:
    """Whether the runner gave the cell's run of this attempt up for want of device memory (its verdict,
    stored with the run)."""
    runs = [r for r in db.runs(sweep_key=key) if r["created_unix_s"] >= since_unix_s]
    if not runs:
        return False
    environment = runs[-1].get("environment") or {}
    if "out_of_memory" in environment:
        return bool(environment["out_of_memory"])
    # a run stored before the runner recorded its verdict: its repeats say it, as many in a row at the end
    # as make the runner give up
    trailing = 0
    for trial in db.trials(runs[-1]["id"], kind="generation"):
        trailing = trailing + 1 if (trial.get("details") or {}).get("out_of_memory") else 0
    return trailing >= OUT_OF_MEMORY_STRIKES


def _last_error(db: ResultsDB, key: str) -> str | None:
    """The first failed trial's error of the cell's latest run, for the one-line report."""
    runs = db.runs(sweep_key=key)
    if not runs:
        return None
    for trial in db.trials(runs[-1]["id"]):
        if trial["status"] != "ok" and trial["error"]:
            return str(trial["error"]).strip().splitlines()[0]
    return f"run ended {runs[-1]['status']}"


def short_model(model: str) -> str:
    """A model folder by its name; presets and hub IDs as written."""
    return Path(model).name if Path(model).is_absolute() else model


def starting(cells: list[Cell], attempt: int, where: str = "") -> str:
    """The line printed when a group (one engine start) begins, so that a long cell shows it is running."""
    first = cells[0]
    workloads = ", ".join(c.workload.label for c in cells)
    again = f", attempt {attempt}" if attempt > 1 else ""
    return f"start   {first.engine.label} {short_model(first.config.model)}: {workloads}{where}{again}"


def describe(outcome: Outcome) -> str:
    c = outcome.cell
    what = f"{c.engine.label} {short_model(c.config.model)} {c.workload.label} [{c.key}]"
    if outcome.status == FAILED:
        return f"failed  {what} after {outcome.attempts} attempt(s): {outcome.error}"
    if outcome.status == SKIPPED:
        return f"skipped {what} (finished earlier)"
    if outcome.status == LATER:
        return f"later   {what}: {outcome.error}; --resume runs the rest"
    retried = f" (attempt {outcome.attempts})" if outcome.attempts > 1 else ""
    return f"ok      {what}{retried}"

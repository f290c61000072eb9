"""A sweep from plan to results: check everything first, then run the unfinished cells group by group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from joulebench.runner.deadline import Deadline, Guess
from joulebench.sweep.cells import Cell, Group, expand, group
from joulebench.sweep.outcome import FAILED, LATER, OK, SKIPPED, Outcome, Say, describe, short_model
from joulebench.sweep.plan import Plan, PlanError
from joulebench.sweep.state import remainder, tally
from joulebench.sweep.validate import not_installed, validate

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB


class Executor(Protocol):
    name: str

    def gpus_per_node(self) -> int: ...

    def run(
        self, groups: list[Group], db: ResultsDB, max_retries: int, say: Say, deadline: Deadline | None = None
    ) -> list[Outcome]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SweepResult:
    outcomes: tuple[Outcome, ...]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def summary(self) -> str:
        ok, failed, skipped = self.count(OK), self.count(FAILED), self.count(SKIPPED)
        text = f"{ok} ok, {failed} failed, {skipped} skipped (finished earlier)"
        later = self.count(LATER)
        return f"{text}, {later} left at the time limit" if later else text


def plan_cells(
    plan: Plan, gpus_per_node: int, here: list[str] | None = None, left_out: list[str] | None = None
) -> list[Cell]:
    """Expand and validate; raise :class:`PlanError` with one line per problem. With ``here`` (a dry
    run), what only this machine lacks is put there instead of raised. An ``optional`` engine whose
    package is not installed is left out, with a line in ``left_out``."""
    missing = {id(e): why for e in plan.engines if e.optional and (why := not_installed(e.name))}
    if missing:
        kept = tuple(e for e in plan.engines if id(e) not in missing)
        if left_out is not None:
            left_out += [
                f"left out {e.label} (optional): {missing[id(e)]}" for e in plan.engines if id(e) in missing
            ]
        if not kept:
            raise PlanError(["every engine of the plan is optional and none is installed here"])
        plan = replace(plan, engines=kept)
    cells = expand(plan, gpus_per_node)
    problems = validate(plan, cells, gpus_per_node, here)
    if problems:
        raise PlanError(problems)
    return cells


def plans_cells(
    plans: Sequence[Plan],
    gpus_per_node: int,
    here: list[str] | None = None,
    left_out: list[str] | None = None,
) -> list[Cell]:
    """The cells of several plans, in plan order, as one sweep: every plan's problems are raised at once.
    A cell that an earlier plan already has (the same key: the same resolved configuration) runs once."""
    cells: list[Cell] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for plan in plans:
        lacks: list[str] | None = None if here is None else []
        try:
            expanded = plan_cells(plan, gpus_per_node, lacks, left_out)
        except PlanError as exc:
            problems += [_in_plan(plan, p, len(plans)) for p in exc.problems]
            continue
        finally:
            if here is not None and lacks:
                here += [_in_plan(plan, line, len(plans)) for line in lacks]
        for cell in expanded:
            if cell.key in seen:
                if left_out is not None:
                    also = f"is also in plan {seen[cell.key]}: runs once"
                    left_out.append(f"{_cell_text(cell)} of plan {plan.name} {also}")
                continue
            seen[cell.key] = plan.name
            cells.append(cell)
    if problems:
        raise PlanError(problems)
    return cells


def _in_plan(plan: Plan, problem: str, plans: int) -> str:
    return problem if plans == 1 else f"plan {plan.name}: {problem}"


def _cell_text(cell: Cell) -> str:
    return f"{cell.engine.label} {short_model(cell.config.model)} {cell.workload.label} [{cell.key}]"


@dataclass(frozen=True)
class Pending:
    todo: list[Cell]  # a cell that earlier runs did in part comes cut to the rest, with the same key
    finished: list[Cell]
    earlier: dict[str, str]  # by key, for a cell in ``todo`` that earlier runs began: what they did

    def resumed(self, cell: Cell) -> str | None:
        """The line a sweep prints for a cell it continues, or ``None``."""
        done = self.earlier.get(cell.key)
        if done is None:
            return None
        return f"resume  {_cell_text(cell)}: {done}"


def pending_cells(cells: Sequence[Cell], db: ResultsDB | None, resume: bool) -> Pending:
    """What a sweep runs. Without ``resume`` (or without a database yet) every cell runs again, in full."""
    if not resume or db is None:
        return Pending(list(cells), [], {})
    todo: list[Cell] = []
    finished: list[Cell] = []
    earlier: dict[str, str] = {}
    for cell in cells:
        counted = tally(db, cell.key)
        rest = remainder(cell.config, counted)
        if rest is None:
            finished.append(cell)
        elif counted.runs:
            earlier[cell.key] = counted.describe(cell.config)
            todo.append(replace(cell, config=rest))
        else:
            todo.append(cell)
    return Pending(todo, finished, earlier)


def run_sweep(
    cells: Sequence[Cell],
    db: ResultsDB,
    executor: Executor,
    *,
    resume: bool,
    max_retries: int,
    say: Say,
    end_unix_s: float | None = None,
) -> SweepResult:
    """Run what ``cells`` lack. With ``end_unix_s`` (``--time-limit``) no trial starts whose estimate ends
    past it; the cells it stops or never begins come back ``later``."""
    if resume:
        from joulebench.store.stale import close_stale_runs

        closed = close_stale_runs(db)
        if closed:
            say(
                f"closed run(s) {', '.join(map(str, closed))}, left 'running' by a process that is gone: "
                "marked interrupted"
            )
    pending = pending_cells(cells, db, resume)
    skipped = [Outcome(c, SKIPPED, 0) for c in pending.finished]
    for outcome in skipped:
        say(describe(outcome))
    for cell in pending.todo:
        line = pending.resumed(cell)
        if line:
            say(line)
    deadline = None if end_unix_s is None else time_limit(end_unix_s, pending.todo, db)
    ran = executor.run(group(pending.todo), db, max_retries, say, deadline) if pending.todo else []
    return SweepResult(tuple(skipped + ran))


def time_limit(end_unix_s: float, cells: Sequence[Cell], db: ResultsDB | None) -> Deadline:
    """The deadline with each cell's first guesses: the dry run's estimates of its trials."""
    from joulebench.sweep.estimate import trial_times

    guesses = {}
    for cell in cells:
        times = trial_times(db, cell.config)
        guesses[cell.key] = Guess(times.setup_s, times.generate_s, times.transition_s)
    longest = Guess(
        setup_s=max((g.setup_s for g in guesses.values()), default=0.0),
        generate_s=max((g.generate_s for g in guesses.values()), default=0.0),
    )
    return Deadline(end_unix_s, default=longest, guesses=guesses)

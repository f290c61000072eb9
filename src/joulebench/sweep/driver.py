"""A sweep from plan to results: check everything first, then run the unfinished cells group by group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from joulebench.sweep.cells import Cell, Group, expand, group
from joulebench.sweep.outcome import FAILED, OK, SKIPPED, Outcome, Say, describe
from joulebench.sweep.plan import Plan, PlanError
from joulebench.sweep.state import finished_keys
from joulebench.sweep.validate import validate


class Executor(Protocol):
    name: str

    def gpus_per_node(self) -> int: ...

    def run(self, groups: list[Group], db: Any, max_retries: int, say: Say) -> list[Outcome]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SweepResult:
    outcomes: tuple[Outcome, ...]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def summary(self) -> str:
        ok, failed, skipped = self.count(OK), self.count(FAILED), self.count(SKIPPED)
        return f"{ok} ok, {failed} failed, {skipped} skipped (finished earlier)"


def plan_cells(plan: Plan, gpus_per_node: int) -> list[Cell]:
    """Expand and validate; raise :class:`PlanError` with one line per problem."""
    cells = expand(plan, gpus_per_node)
    problems = validate(plan, cells, gpus_per_node)
    if problems:
        raise PlanError(problems)
    return cells


def pending_cells(cells: Sequence[Cell], db: Any, resume: bool) -> tuple[list[Cell], list[Cell]]:
    """(to run, finished earlier). Without ``resume`` every cell runs again."""
    if not resume:
        return list(cells), []
    done = finished_keys(db, [c.key for c in cells])
    return [c for c in cells if c.key not in done], [c for c in cells if c.key in done]


def run_sweep(
    cells: Sequence[Cell], db: Any, executor: Executor, *, resume: bool, max_retries: int, say: Say
) -> SweepResult:
    todo, finished = pending_cells(cells, db, resume)
    skipped = [Outcome(c, SKIPPED, 0) for c in finished]
    for outcome in skipped:
        say(describe(outcome))
    ran = executor.run(group(todo), db, max_retries, say) if todo else []
    return SweepResult(tuple(skipped + ran))

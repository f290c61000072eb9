"""``--dry-run``: the trials a sweep would run, and how long they would take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from joulebench.sweep.cells import Cell, Group, group
from joulebench.sweep.driver import Pending
from joulebench.sweep.estimate import cell_estimate, format_duration, trial_times
from joulebench.sweep.outcome import short_model

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

COLUMNS = (
    "engine", "model", "workload", "device", "tp", "setup", "repeats", "estimate", "from", "key", "state",
)  # fmt: skip


def dry_run_lines(
    cells: Sequence[Cell], pending: Pending, db: ResultsDB | None, limit_s: float | None = None
) -> list[str]:
    """A table of cells (one engine start per group), then the totals. Finished cells are listed but not
    counted: ``--resume`` would skip them; a cell that earlier runs began shows only what it still lacks.
    With ``limit_s`` (``--time-limit``), the cells whose estimate would not fit are marked ``later``."""
    todo = {c.key: c for c in pending.todo}
    groups = group(pending.todo)
    first_of_group = {g.cells[0].key for g in groups}
    estimates = {
        c.key: cell_estimate(trial_times(db, c.config), c.config, engine_start=c.key in first_of_group)
        for c in pending.todo
    }
    later = _past_limit(groups, {k: e.duration_s for k, e in estimates.items()}, limit_s)
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    total_s = 0.0
    setups = repeats = cycles = 0
    sleeps = False
    for listed in cells:
        cell = todo.get(listed.key, listed)
        cfg = cell.config
        done = listed.key not in todo
        est = None if done else estimates[cell.key]
        if est is not None:
            total_s += est.duration_s
            setups += cfg.setup_trials
            repeats += cfg.repeats
            cycles += cfg.lifecycle_cycles
            sleeps = sleeps or bool(cfg.lifecycle_cycles and cfg.sleep_levels)
        resumed = pending.resumed(cell)
        if resumed:
            notes.append(resumed)
        rows.append(
            (
                cell.engine.label,
                short_model(cfg.model),
                cell.workload.label,
                cfg.device,
                str(cfg.tensor_parallel),
                str(cfg.setup_trials),
                str(cfg.repeats),
                "-" if est is None else format_duration(est.duration_s),
                "-" if est is None else est.source,
                cell.key,
                "done" if done else "later" if cell.key in later else "resume" if resumed else "pending",
            )
        )
    lines = [*_table(rows), *notes]
    held = f", {cycles} {'park-and-sleep cycle(s)' if sleeps else 'park(s)'}" if cycles else ""
    lines.append(
        f"{len(cells)} cells ({len(todo)} to run) in {len(groups)} engine start(s): {setups} setup trial(s), "
        f"{repeats} generation repeat(s){held}; estimated {format_duration(total_s)}"
    )
    if limit_s is not None:
        fit_s = sum(e.duration_s for k, e in estimates.items() if k not in later)
        lines.append(
            f"--time-limit {format_duration(limit_s)}: {len(todo) - len(later)} of {len(todo)} cells fit "
            f"(about {format_duration(fit_s)}); {len(later)} left for a later --resume"
            + (" (marked later)" if later else "")
        )
    return lines


def _past_limit(groups: Sequence[Group], estimate_s: dict[str, float], limit_s: float | None) -> set[str]:
    """The cells a sweep under ``limit_s`` would leave, by the estimates, as it runs them: groups in order,
    a group's cells in order until one does not fit (the rest of its engine start with it), then on with
    the next group that fits."""
    if limit_s is None:
        return set()
    left_s, later = limit_s, set()
    for g in groups:
        stopped = False
        for cell in g.cells:
            if stopped or estimate_s[cell.key] > left_s:
                stopped = True
                later.add(cell.key)
            else:
                left_s -= estimate_s[cell.key]
    return later


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*COLUMNS).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]

"""``--dry-run``: the trials a sweep would run, and how long they would take."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from joulebench.sweep.cells import Cell, group
from joulebench.sweep.driver import Pending
from joulebench.sweep.estimate import cell_estimate, format_duration, trial_times
from joulebench.sweep.fit import IN_PART, LATER, WHOLE, within_limit
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
    With ``limit_s`` (``--time-limit``), each cell is marked as a sweep under that limit would leave it, by
    the estimates (sweep/fit.py): whole (``pending``), begun and stopped at the limit (``partial``) or not
    begun (``later``)."""
    todo = {c.key: c for c in pending.todo}
    groups = group(pending.todo)
    first_of_group = {g.cells[0].key for g in groups}
    times = {c.key: trial_times(db, c.config) for c in pending.todo}
    estimates = {
        c.key: cell_estimate(times[c.key], c.config, engine_start=c.key in first_of_group)
        for c in pending.todo
    }
    fits = None if limit_s is None else within_limit(groups, times, first_of_group, limit_s)
    later = set() if fits is None else {k for k, state in fits.states.items() if state == LATER}
    part = set() if fits is None else {k for k, state in fits.states.items() if state == IN_PART}
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
                _state(cell.key, done, resumed, {} if fits is None else fits.states),
            )
        )
    lines = [*_table(rows), *notes]
    held = f", {cycles} {'park-and-sleep cycle(s)' if sleeps else 'park(s)'}" if cycles else ""
    lines.append(
        f"{len(cells)} cells ({len(todo)} to run) in {len(groups)} engine start(s): {setups} setup trial(s), "
        f"{repeats} generation repeat(s){held}; estimated {format_duration(total_s)}"
    )
    if limit_s is not None and fits is not None:
        whole = len(todo) - len(later) - len(part)
        begun = f", {len(part)} begun and stopped at the limit" if part else ""
        marked = [name for name, cells_ in ((IN_PART, part), (LATER, later)) if cells_]
        lines.append(
            f"--time-limit {format_duration(limit_s)}: {whole} of {len(todo)} cells fit{begun} "
            f"(about {format_duration(fits.used_s)}); {len(later) + len(part)} left for a later --resume"
            + (f" (marked {', '.join(marked)})" if marked else "")
        )
    return lines


def _state(key: str, done: bool, resumed: str | None, states: Mapping[str, str]) -> str:
    if done:
        return "done"
    state = states.get(key, WHOLE)
    return "resume" if state == WHOLE and resumed else state


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*COLUMNS).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]

"""A warm engine between requests: parked (loaded, serving nothing), put to sleep, held asleep and woken,
each above the idle baseline (docs/lifecycle.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from joulebench.report.tables import CI_NOTE, Table, format_stat
from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED

if TYPE_CHECKING:
    import pandas as pd

NOTES = (
    CI_NOTE,
    "Above idle: less the machine's idle baseline over the same time, so what keeping the engine costs "
    "beyond the machine being on. Parked: loaded and serving nothing; asleep: after the engine's sleep call "
    "(level 1 moves the weights to host memory, level 2 drops them and reads them again on waking; "
    "docs/lifecycle.md). "
    "(est.): from an estimated total, where nothing was measured.",
)


def lifecycle_table(summary: pd.DataFrame) -> Table | None:
    """``None`` where no run parked or slept its engine."""
    index = StatIndex(summary)
    held = summary[summary["stage"].isin(["park", "sleep"]) & (summary["metric"] == "above_idle_power_w")]
    rows = []
    # the summary pools these trials over the workloads the engine served before (workload "")
    for cell in sorted(set(held[["kind", "engine", "model", "workload"]].itertuples(index=False))):
        kind, engine, model, _ = (str(x) for x in cell)
        if kind == "park":
            rows.append((engine, model, "parked", _n(index, cell, "park"), "-", "-",
                         _get(index, cell, "park", "above_idle_power_w", total=True), "-", "-"))  # fmt: skip
            continue
        rows.append(
            (engine, model, f"asleep, level {kind.removeprefix('sleep-')}", _n(index, cell, "sleep"),
             _get(index, cell, "sleep_enter", "duration_s"),
             _get(index, cell, "sleep_enter", "above_idle_energy_j", total=True),
             _get(index, cell, "sleep", "above_idle_power_w", total=True),
             _get(index, cell, "wake", "duration_s"),
             _get(index, cell, "wake", "above_idle_energy_j", total=True))
        )  # fmt: skip
    if not rows:
        return None
    columns = ("Engine", "Model", "State", "n", "To sleep (s)", "To sleep (J above idle)",
               "Held (W above idle)", "Wake (s)", "Wake (J above idle)")  # fmt: skip
    return Table("Parked and asleep", columns, tuple(rows), NOTES)


def _n(index: StatIndex, cell: tuple[object, ...], stage: str) -> str:
    """How many trials the held figure is the mean of."""
    found = _total(index, cell, stage, "above_idle_power_w")
    return str(found.n) if found else "0"


def _get(index: StatIndex, cell: tuple[object, ...], stage: str, metric: str, *, total: bool = False) -> str:
    """A cell's figure: the measured total, else the estimated one (said so), or a plain metric."""
    kind, engine, model, workload = (str(x) for x in cell)
    if not total:
        return format_stat(index.get(kind, engine, model, workload, stage, "", metric))
    return format_stat(_total(index, cell, stage, metric))


def _total(index: StatIndex, cell: tuple[object, ...], stage: str, metric: str) -> Stat | None:
    kind, engine, model, workload = (str(x) for x in cell)
    found = index.get(kind, engine, model, workload, stage, TOTAL, metric)
    return found or index.get(kind, engine, model, workload, stage, TOTAL_INCL_ESTIMATED, metric)

"""Each engine's GPU energy per token against the floor of its card (docs/roofline.md)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from joulebench.report.tables import CI_NOTE, Table, format_stat
from joulebench.results.aggregate import StatIndex

if TYPE_CHECKING:
    import pandas as pd

NOTES = (
    CI_NOTE,
    "Floor: the least GPU energy per output token the card allows for this model, batch and context: each "
    "decode step's bytes (weights, KV cache) and FLOPs at the card's measured energy per byte and per FLOP "
    "above idle, plus idle power over the step's shortest possible time (`joulebench roofline`, "
    "docs/roofline.md). % of floor: the measured GPU J/token over it; 100 % would be at the limit.",
)


def floor_table(summary: pd.DataFrame) -> Table | None:
    """``None`` where no run has a roofline of its card."""
    index = StatIndex(summary)
    rows_with = summary[(summary["kind"] == "generation") & (summary["metric"] == "floor_j_per_token")]
    rows = []
    for engine, model, workload in sorted(
        set(rows_with[["engine", "model", "workload"]].itertuples(index=False))
    ):
        get = partial(index.get, "generation", engine, model, workload, "generate", "gpu")
        rows.append(
            (engine, model, workload, format_stat(get("j_per_token")), format_stat(get("floor_j_per_token")),
             format_stat(get("pct_of_floor")))
        )  # fmt: skip
    if not rows:
        return None
    columns = ("Engine", "Model", "Workload", "GPU J/token", "Floor J/token", "% of floor")
    return Table("Distance from the floor", columns, tuple(rows), NOTES)

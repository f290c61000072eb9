"""The report's check of the GPU energy counter against the power timeline, run by run
(results/crosscheck.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.report.tables import Table
from joulebench.results.crosscheck import LONG_S, counter_vs_timeline, summary
from joulebench.results.tidy import engine_labels

if TYPE_CHECKING:
    from joulebench.store.frames import Frames

#: a long window whose two readings part by more than this is named among the report's warnings
WARN_REL_DIFF = 0.05
NOTE = (
    "Each GPU window of a repeat or warm-up whose trial kept a trace: the energy counter against the "
    f"trapezoid integral of the 20 ms power timeline over the same span. Windows under {LONG_S:g} s are "
    "dominated by the counter's update period; the headline is the largest difference among the longer ones."
)


def _pct(value: float | int | None) -> str:
    return "-" if value is None else f"{float(value):.2%}"


def crosscheck_section(frames: Frames, db_path: Path) -> tuple[Table | None, list[str]]:
    """The table (``None`` where no trial kept a GPU power timeline) and its warnings."""
    checks = counter_vs_timeline(frames, db_path)
    if not checks:
        return None, []
    engines = engine_labels(frames.runs)
    rows, warnings = [], []
    for run_id in sorted({c.run_id for c in checks}):
        s = summary([c for c in checks if c.run_id == run_id])
        rows.append(
            (str(run_id), engines[run_id], str(s["windows"]), _pct(s["median_abs_rel_diff"]),
             _pct(s["max_abs_rel_diff"]), str(s["windows_ge_2s"]), _pct(s["max_abs_rel_diff_windows_ge_2s"]))
        )  # fmt: skip
        worst = s["max_abs_rel_diff_windows_ge_2s"]
        if worst is not None and worst > WARN_REL_DIFF:
            warnings.append(
                f"run {run_id} ({engines[run_id]}): the GPU energy counter and the power timeline differ by "
                f"{worst:.1%} on a window of {LONG_S:g} s or more: check the driver and the sampling"
            )
    total = summary(checks)
    rows.append(("all", "", str(total["windows"]), _pct(total["median_abs_rel_diff"]),
                 _pct(total["max_abs_rel_diff"]), str(total["windows_ge_2s"]),
                 _pct(total["max_abs_rel_diff_windows_ge_2s"])))  # fmt: skip
    columns = ("Run", "Engine", "Windows", "Median |diff|", "Max |diff|", f"Windows >= {LONG_S:g} s",
               f"Max |diff|, >= {LONG_S:g} s")  # fmt: skip
    return Table("GPU energy counter against the power timeline", columns, tuple(rows), (NOTE,)), warnings

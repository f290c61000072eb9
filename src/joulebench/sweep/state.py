"""What the results database says about a sweep's cells: finished, failed, or never run.

A cell is finished when a run with its ``sweep_key`` ended ``ok``; a ``running`` row left by a killed
sweep, a ``partial``, ``failed`` or ``interrupted`` one, does not count, so resume runs that cell again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

FINISHED = "ok"


def finished_keys(db: ResultsDB, keys: Iterable[str]) -> set[str]:
    return {key for key in dict.fromkeys(keys) if db.runs(sweep_key=key, status=FINISHED)}


def run_counts(db: ResultsDB, key: str) -> dict[str, int]:
    """Runs of one cell by status, e.g. ``{"ok": 1, "failed": 2}``."""
    counts: dict[str, int] = {}
    for run in db.runs(sweep_key=key):
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return counts

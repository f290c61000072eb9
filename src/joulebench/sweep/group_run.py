"""Runs one group of cells (one engine start, several workloads) through the runner.

The database is the record of what finished: callers ask it which cells ended ``ok`` afterwards, so an
exception here costs only the cells it interrupted, never the ones already written.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from joulebench.runner.config import RunConfig
from joulebench.runner.deadline import Deadline

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

log = logging.getLogger(__name__)


def run_group(
    configs: list[RunConfig],
    db: ResultsDB,
    *,
    together: bool = True,
    say: Callable[[str], None] | None = None,
    deadline: Deadline | None = None,
) -> str | None:
    """Run ``configs`` (equal but for the workload) in one engine start, or with ``together=False`` one
    run after another, so that a cell the runner rejects cannot take the others down with it (retries do
    this). ``say`` gets a line per step that ends (warm-ups, trials). No trial starts that ``deadline``
    cannot hold. Returns the last error met, or ``None``."""
    from joulebench.runner.display import LineProgress

    progress = LineProgress(say) if say is not None else None
    if together and len(configs) > 1:
        return _guarded(configs, db, progress, deadline)
    errors = [_guarded([config], db, progress, deadline) for config in configs]
    return next((e for e in reversed(errors) if e), None)


def _guarded(configs: list[RunConfig], db: ResultsDB, progress: Any, deadline: Deadline | None) -> str | None:
    from joulebench.runner import run as runner

    try:
        runner.execute_many(configs, db, progress=progress, deadline=deadline)
    except Exception as exc:  # the sweep goes on; the cells' statuses in the database tell what failed
        log.debug("runner failed:\n%s", traceback.format_exc())
        text = str(exc).strip()
        return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return None

"""Runs one group of cells (one engine start, several workloads) through the runner.

The database is the record of what finished: callers ask it which cells ended ``ok`` afterwards, so an
exception here costs only the cells it interrupted, never the ones already written.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from joulebench.runner.config import RunConfig

log = logging.getLogger(__name__)


def run_group(configs: list[RunConfig], db: Any) -> str | None:
    """Run ``configs`` (equal but for the workload) in one engine start where the runner allows it.
    Returns the error that stopped the group, or ``None``."""
    from joulebench.runner import run as runner

    try:
        if len(configs) > 1 and hasattr(runner, "execute_many"):
            runner.execute_many(configs, db)
        else:
            for config in configs:
                runner.execute(config, db)
    except Exception as exc:  # the sweep goes on; the cells' statuses in the database tell what failed
        log.debug("group failed:\n%s", traceback.format_exc())
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None

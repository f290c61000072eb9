"""The local executor: groups one after another in this process, each pinned to the GPUs it needs."""

from __future__ import annotations

import time
from typing import Any

from joulebench.sweep.cells import Group
from joulebench.sweep.gpus import pinned, visible_gpu_ids
from joulebench.sweep.group_run import run_group
from joulebench.sweep.outcome import Outcome, Say, describe, settle, starting


class LocalExecutor:
    name = "local"

    def gpus_per_node(self) -> int:
        return len(visible_gpu_ids())

    def run(self, groups: list[Group], db: Any, max_retries: int, say: Say) -> list[Outcome]:
        started = time.time()
        outcomes: list[Outcome] = []
        for group in groups:
            pending = list(group.cells)
            attempt = 0
            while pending:
                attempt += 1
                say(starting(pending, attempt))
                attempt_started = time.time()
                with pinned(group.num_gpus):
                    # a retry runs cells one by one: a cell rejected at start cannot fail its neighbours
                    error = run_group([c.config for c in pending], db, together=attempt == 1, say=say)
                settled = settle(db, pending, attempt, max_retries, error, started, attempt_started)
                for outcome in settled.outcomes:
                    say(describe(outcome))
                outcomes += settled.outcomes
                pending = settled.retry
        return outcomes

    def close(self) -> None:
        """Nothing to release: the runner stops its engines itself."""

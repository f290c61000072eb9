"""The local executor: groups one after another in this process, each pinned to the GPUs it needs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from joulebench.sweep.cells import Group
from joulebench.sweep.gpus import pinned, visible_gpu_ids
from joulebench.sweep.group_run import run_group
from joulebench.sweep.outcome import LATER, NOT_BEGUN, Outcome, Say, describe, settle, starting

if TYPE_CHECKING:
    from joulebench.runner.deadline import Deadline
    from joulebench.store.db import ResultsDB


class LocalExecutor:
    name = "local"

    def gpus_per_node(self) -> int:
        return len(visible_gpu_ids())

    def run(
        self, groups: list[Group], db: ResultsDB, max_retries: int, say: Say, deadline: Deadline | None = None
    ) -> list[Outcome]:
        from joulebench.runner.deadline import opening_s
        from joulebench.runner.display import duration_text
        from joulebench.sweep.estimate import cell_estimate, pace_left_s, trial_times

        started = time.time()
        outcomes: list[Outcome] = []
        total = sum(len(g.cells) for g in groups)
        estimate_s = {
            c.key: cell_estimate(trial_times(db, c.config), c.config, engine_start=k == 0).duration_s
            for g in groups
            for k, c in enumerate(g.cells)
        }
        for group in groups:
            pending = list(group.cells)
            first = pending[0].config
            if deadline is not None and opening_s(first, deadline.guess(first.sweep_key)) > deadline.left_s():
                # not even its first trial fits: no engine start, no "start" line
                later = [Outcome(c, LATER, 0, NOT_BEGUN) for c in pending]
                for outcome in later:
                    say(describe(outcome))
                outcomes += later
                continue
            attempt = 0
            while pending:
                attempt += 1
                say(starting(pending, attempt))
                attempt_started = time.time()
                with pinned(group.num_gpus):
                    # a retry runs cells one by one: a cell rejected at start cannot fail its neighbours
                    configs = [c.config for c in pending]
                    error = run_group(configs, db, together=attempt == 1, say=say, deadline=deadline)
                timed = deadline is not None
                settled = settle(db, pending, attempt, max_retries, error, started, attempt_started, timed)
                for outcome in settled.outcomes:
                    say(describe(outcome))
                outcomes += settled.outcomes
                pending = settled.retry
            # the rest's estimates at the pace the finished cells kept against theirs, retries included
            done, elapsed = len(outcomes), time.time() - started
            if done < total and not any(o.status == LATER for o in outcomes):  # past that, the limit says
                finished = {o.cell.key for o in outcomes}
                todo = [c.key for g in groups for c in g.cells if c.key not in finished]
                left = pace_left_s(estimate_s, sorted(finished), todo, elapsed)
                eta = f", about {duration_text(left)} left" if left is not None else ""
                if left is not None and deadline is not None and left > deadline.left_s():
                    eta += f" (the time limit stops it in {duration_text(max(deadline.left_s(), 0.0))})"
                say(f"sweep: {done} of {total} cells done in {duration_text(elapsed)}{eta}")
        return outcomes

    def close(self) -> None:
        """Nothing to release: the runner stops its engines itself."""

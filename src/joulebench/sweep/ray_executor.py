"""The Ray executor: each group of cells is one Ray task, placed on a node with the GPUs it needs.

Each node measures its own power sources: the task runs the runner there into a node-local temporary
database and returns the rows of its runs as plain dicts (:mod:`joulebench.store.transfer`). The driver
alone writes the main database, as each task finishes, so a driver stopped mid-sweep keeps every group
already returned and ``--resume`` runs only the rest.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.errors import UsageError, require
from joulebench.runner.config import RunConfig
from joulebench.store.transfer import export_runs, import_runs
from joulebench.sweep.cells import Cell, Group
from joulebench.sweep.gpus import own_compile_caches, pinned, visible_gpu_ids
from joulebench.sweep.group_run import run_group
from joulebench.sweep.outcome import Outcome, Say, describe, settle, starting

if TYPE_CHECKING:
    from joulebench.runner.deadline import Deadline
    from joulebench.store.db import ResultsDB


def run_group_on_node(
    configs: list[dict[str, Any]], num_gpus: int, together: bool = True, deadline: Deadline | None = None
) -> dict[str, Any]:
    """The body of a Ray task: run one group on this node and return its rows (picklable, no handles).
    Ray has set ``CUDA_VISIBLE_DEVICES`` to the GPUs it gave the task; a CPU task is shown none, as the
    local executor does, so that no GPU's idle power is counted in a CPU cell. Tasks share a node's
    disks, so a GPU task's engine keeps its compile caches per GPU set."""
    from joulebench.store.db import ResultsDB

    run_configs = [RunConfig(**d) for d in configs]
    hide_gpus = pinned(0) if num_gpus == 0 else contextlib.nullcontext()
    gpu_ids = visible_gpu_ids()[:num_gpus] if num_gpus else []
    caches = own_compile_caches(run_configs[0].engine, gpu_ids)
    with hide_gpus, caches, tempfile.TemporaryDirectory(prefix="joulebench-node-") as tmp:
        db = ResultsDB(Path(tmp) / "node.db")
        try:
            # Ray forwards a task's stdout to the driver, each line marked with the task and its node
            error = run_group(run_configs, db, together=together, say=_print, deadline=deadline)
            runs = export_runs(db)
        finally:
            db.close()
    return {"node": socket.gethostname(), "runs": runs, "error": error}


def _print(line: str) -> None:
    print(line, flush=True)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.ray = require("ray", extra="ray")
        # Without an address, ray.init() joins the cluster named by RAY_ADDRESS or starts a private one.
        try:
            self.ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False)
        except ConnectionError as exc:
            raise UsageError(f"cannot reach the Ray cluster at {address}: {exc}") from exc

    def gpus_per_node(self) -> int:
        """GPUs of the largest alive node: a task's tensor-parallel GPUs must all be on one node."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return max((int(n.get("Resources", {}).get("GPU", 0)) for n in nodes), default=0)

    def run(
        self, groups: list[Group], db: ResultsDB, max_retries: int, say: Say, deadline: Deadline | None = None
    ) -> list[Outcome]:
        started = time.time()
        remote = self.ray.remote(run_group_on_node)
        in_flight: dict[Any, tuple[Group, list[Cell], int, float]] = {}

        def submit(group: Group, cells: list[Cell], attempt: int) -> None:
            # Ray must not retry on its own: a retry here counts against --max-retries.
            task = remote.options(
                num_gpus=group.num_gpus, num_cpus=group.engine.num_cpus, max_retries=0, name=_task_name(group)
            )
            # a retry runs cells one by one: a cell rejected at start cannot fail its neighbours
            # the deadline is wall-clock time, so a task queued for GPUs, or on another node, keeps it
            ref = task.remote(
                [c.config.to_dict() for c in cells], group.num_gpus, together=attempt == 1, deadline=deadline
            )
            in_flight[ref] = (group, cells, attempt, time.time())
            say(starting(cells, attempt, " (queued on Ray)"))

        for group in groups:
            submit(group, list(group.cells), 1)
        outcomes: list[Outcome] = []
        while in_flight:
            ready, _ = self.ray.wait(list(in_flight), num_returns=1)
            group, cells, attempt, submitted = in_flight.pop(ready[0])
            error = self._collect(ready[0], db)
            settled = settle(db, cells, attempt, max_retries, error, started, submitted, deadline is not None)
            for outcome in settled.outcomes:
                say(describe(outcome))
            outcomes += settled.outcomes
            if settled.retry:
                submit(group, settled.retry, attempt + 1)
        return outcomes

    def _collect(self, ref: Any, db: ResultsDB) -> str | None:
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the task or its worker died: its cells failed
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        import_runs(db, result["runs"])
        error = result["error"]
        return None if error is None else str(error)

    def close(self) -> None:
        self.ray.shutdown()


def _task_name(group: Group) -> str:
    first = group.cells[0]
    return f"joulebench:{first.engine.label}:{Path(first.config.model).name}"

"""A cell that failed before the runner could write a run (bad tokenizer, a task lost with its node) still
gets a ``failed`` run in the database, so that the record of a sweep is complete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from joulebench.sweep.stored import workload_columns

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB
    from joulebench.sweep.cells import Cell


def has_run_since(db: ResultsDB, key: str, since_unix_s: float) -> bool:
    return any(r["created_unix_s"] >= since_unix_s for r in db.runs(sweep_key=key))


def record_failure(db: ResultsDB, cell: Cell, error: str, attempts: int) -> int:
    """A ``failed`` run without trials; the error and the attempts are under ``config["sweep"]``."""
    config = cell.config
    sweep = {"error": error, "attempts": attempts, "variant": cell.engine.variant}
    run_id = db.create_run(
        engine=config.engine,
        model=config.model,
        device=config.device,
        tensor_parallel=config.tensor_parallel,
        sweep_key=config.sweep_key,
        config={**config.to_dict(), "sweep": sweep},
        environment={},
        **workload_columns(config),
    )
    db.finish_run(run_id, "failed")
    return run_id

"""A cell's workload as the runner stores it in ``runs`` (its name and shape), for matching earlier runs
and for writing a failed run the runner never got to write."""

from __future__ import annotations

from typing import Any

from joulebench.errors import UsageError
from joulebench.runner.config import RunConfig


def workload_columns(config: RunConfig) -> dict[str, Any]:
    """``workload``, ``batch_size``, ``output_tokens``, ``length_mode`` of the resolved workload."""
    from joulebench.workloads.presets import resolve_workload

    try:
        w = resolve_workload(
            config.workload,
            batch_size=config.batch_size,
            output_tokens=config.output_tokens,
            length_mode=config.length_mode,
            dataset=config.dataset,
        )
    except UsageError:  # the plan was checked; only a workload file changed since could get here
        return {
            "workload": config.workload,
            "batch_size": config.batch_size or 0,
            "output_tokens": config.output_tokens or 0,
            "length_mode": config.length_mode or "fixed",
        }
    return {
        "workload": w.name,
        "batch_size": w.batch_size,
        "output_tokens": w.output_tokens,
        "length_mode": w.length_mode,
    }

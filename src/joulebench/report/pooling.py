"""Cells whose repeats came from runs on different GPUs.

The report pools every run of an engine, model and workload (a cell that ``--resume`` continued elsewhere,
a cell run again later). Where those runs measured different GPUs, the mean and CI then hold the difference
between the cards as if it were noise between repeats: two H100s doing the same work drew 4 % apart in the
study of docs/results/h100x4-2026-11-26. The report says so next to the other quality warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from joulebench.report.devices import devices_at_start
from joulebench.report.metrics import GENERATE

if TYPE_CHECKING:
    import pandas as pd

    from joulebench.store.frames import Frames

CELL = ("engine", "model", "workload", "batch_size", "max_output_tokens")


def pooled_gpu_warnings(frames: Frames, metrics: pd.DataFrame) -> list[str]:
    """One line per generation cell whose runs measured more than one set of GPUs (by UUID)."""
    cards = {int(r["id"]): _gpu_uuids(r) for r in frames.runs.to_dict("records")}
    rows = metrics[(metrics["kind"] == "generation") & (metrics["stage"] == GENERATE)]
    out = []
    for cell, runs in rows.groupby(list(CELL), dropna=False)["run_id"]:
        run_ids = sorted({int(r) for r in runs})
        sets = {cards[r] for r in run_ids if cards.get(r)}
        if len(sets) > 1:
            engine, model, workload = cell[:3]
            out.append(
                f"{engine}, {model}, {workload}: repeats pooled from runs {', '.join(map(str, run_ids))} on "
                f"{len(sets)} different GPU sets; the CI includes the difference between the cards"
            )
    return out


def _gpu_uuids(run: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        sorted(
            str(d["attributes"]["uuid"])
            for d in devices_at_start(run)
            if d.get("component") == "gpu" and "uuid" in (d.get("attributes") or {})
        )
    )

"""Cells whose repeats, or setup trials, came from runs on different GPUs.

The report pools every run of an engine, model and workload (a cell that ``--resume`` continued elsewhere,
a cell run again later), and the setup trials of every run of an engine and model. Where those runs
measured different GPUs, the mean and CI then hold the difference between the cards as if it were noise
between repeats: two H100s doing the same work drew 4 % apart in the study of
docs/results/h100x4-2026-11-26. The report says so next to the other quality warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from joulebench.report.devices import devices_at_start
from joulebench.results.tidy import GENERATE

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from joulebench.store.frames import Frames

CELL = ("engine", "model", "workload", "batch_size", "max_output_tokens")
SETUP_CELL = ("engine", "model")


def pooled_gpu_warnings(frames: Frames, metrics: pd.DataFrame) -> list[str]:
    """One line per generation cell, and per engine and model's setup trials, whose runs measured more than
    one set of GPUs (by UUID)."""
    cards = {int(r["id"]): _gpu_uuids(r) for r in frames.runs.to_dict("records")}
    generation = metrics[(metrics["kind"] == "generation") & (metrics["stage"] == GENERATE)]
    setup = metrics[(metrics["kind"] == "setup") & (metrics["stage"] == "setup")]
    return _pooled(generation, CELL, lambda k: f"{k[0]}, {k[1]}, {k[2]}", "repeats", cards) + _pooled(
        setup, SETUP_CELL, lambda k: f"{k[0]}, {k[1]}, setup", "setup trials", cards
    )


def _pooled(
    rows: pd.DataFrame,
    cell: tuple[str, ...],
    name: Callable[[tuple[Any, ...]], str],
    what: str,
    cards: dict[int, tuple[str, ...]],
) -> list[str]:
    out = []
    for key, runs in rows.groupby(list(cell), dropna=False)["run_id"]:
        run_ids = sorted({int(r) for r in runs})
        sets = {cards[r] for r in run_ids if cards.get(r)}
        if len(sets) > 1:
            out.append(
                f"{name(key)}: {what} pooled from runs {', '.join(map(str, run_ids))} on "
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

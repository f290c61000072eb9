"""Moving finished runs from a node's own database to the main one, as plain picklable values.

A Ray task measures on its node into a node-local database, then returns each of its runs as a dict of
plain values: the arguments of :meth:`ResultsDB.create_run`, its final status, and per trial the fields
of :class:`TrialRow`, :class:`StageEnergyRow` and :class:`RequestRow` plus the trace bytes. The driver
alone writes the main database, through the same ``ResultsDB`` writers the runner uses, so its rows get
fresh ids there and keep every measured value, their times and the joulebench version that measured them.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from joulebench.store.rows import RequestRow, StageEnergyRow, TrialRow

if TYPE_CHECKING:
    from joulebench.store.db import ResultsDB

ExportedRun = dict[str, Any]

_RUN_ARGS = (
    "engine", "model", "workload", "batch_size", "output_tokens", "length_mode", "device", "config",
    "environment", "tensor_parallel", "engine_version", "model_label", "sweep_key", "created_unix_s",
    "joulebench_version",
)  # fmt: skip
# A run still "running" in a node's database was cut off when its task ended.
_CUT_OFF = {"running": "interrupted"}


def export_runs(db: ResultsDB) -> list[ExportedRun]:
    """Every run of ``db`` with all its trials, as plain values (safe to pickle across nodes)."""
    out: list[ExportedRun] = []
    for run in db.runs():
        trials = []
        for trial in db.trials(run["id"]):
            trials.append(
                {
                    "trial": _pick(TrialRow, trial),
                    "stages": [_pick(StageEnergyRow, s) for s in db.stage_energy(trial["id"])],
                    "requests": [_pick(RequestRow, r) for r in db.requests(trial["id"])],
                    "trace": _trace_bytes(db, trial["id"]),
                }
            )
        out.append(
            {
                "run": {k: run[k] for k in _RUN_ARGS},
                "status": run["status"],
                "finished_unix_s": run["finished_unix_s"],
                "trials": trials,
            }
        )
    return out


def import_runs(db: ResultsDB, runs: list[ExportedRun]) -> list[int]:
    """Write exported runs into ``db``; returns their new ids in order."""
    ids: list[int] = []
    for exported in runs:
        run_id = db.create_run(**exported["run"])
        for t in exported["trials"]:
            db.add_trial(
                run_id,
                _trial(t["trial"]),
                [_stage(s) for s in t["stages"]],
                [_request(r) for r in t["requests"]],
                t["trace"],
            )
        status = str(exported["status"])
        # a finished run keeps its own time; one cut off on its node ends where its record ends (its last
        # trial's end, else its start), so that importing it twice gives the same database
        finished = _last_known_s(exported) if status in _CUT_OFF else exported.get("finished_unix_s")
        db.finish_run(run_id, _CUT_OFF.get(status, status), finished)
        ids.append(run_id)
    return ids


def _last_known_s(exported: dict[str, Any]) -> float:
    ends = [
        float(t["trial"]["started_unix_s"]) + float(t["trial"].get("duration_s") or 0.0)
        for t in exported["trials"]
    ]
    return max([float(exported["run"]["created_unix_s"]), *ends])


def _pick(cls: type, row: dict[str, Any]) -> dict[str, Any]:
    return {f.name: row[f.name] for f in fields(cls) if f.name in row}


def _trial(values: dict[str, Any]) -> TrialRow:
    return TrialRow(**{**values, "details": values.get("details") or {}})


def _stage(values: dict[str, Any]) -> StageEnergyRow:
    flags = values.get("flags") or ""
    return StageEnergyRow(
        **{
            **values,
            "estimated": bool(values.get("estimated")),
            "flags": tuple(f for f in flags.split(",") if f) if isinstance(flags, str) else tuple(flags),
        }
    )


def _request(values: dict[str, Any]) -> RequestRow:
    estimated = values.get("energy_estimated")
    return RequestRow(
        **{
            **values,
            "itl_s": tuple(values.get("itl_s") or ()),
            "energy_estimated": None if estimated is None else bool(estimated),
        }
    )


def _trace_bytes(db: ResultsDB, trial_id: int) -> bytes | None:
    lines = db.trace(trial_id)
    if not lines:
        return None
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    return gzip.compress(text.encode())

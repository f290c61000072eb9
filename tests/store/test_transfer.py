from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

from joulebench.store.db import ResultsDB
from joulebench.store.rows import RequestRow, StageEnergyRow, TrialRow
from joulebench.store.transfer import export_runs, import_runs

TRACE = b'{"t_s":1.0,"device":"gpu0","power_w":70.5}\n{"t_s":1.1,"device":"gpu0","power_w":71.0}\n'


def _write_run(db: ResultsDB, key: str, status: str, tokens: int) -> int:
    run_id = db.create_run(
        engine="transformers", model="/m/tiny", workload="smoke", batch_size=2, output_tokens=tokens,
        length_mode="fixed", device="cpu", config={"repeats": 1, "sweep_key": key},
        environment={"host": "node-a"}, engine_version="5.19.0", model_label="tiny", sweep_key=key,
    )  # fmt: skip
    stages = [
        StageEnergyRow("generate", "cpu", "package-0", 10.0, 12.5, 30.0, "counter", avg_power_w=12.0),
        StageEnergyRow("generate", "gpu", "gpu1", 10.0, 12.5, None, "integrated", flags=("a", "b")),
    ]
    requests = [RequestRow(0, tokens, 5, "length", 0.1, 0.01, 0.5, itl_s=(0.01, 0.02)), RequestRow(1, tokens)]
    trial = TrialRow("generation", 0, "ok", 1700000000.0, 2.5, n_requests=2, output_tokens=2 * tokens,
                     details={"path": "eager"})  # fmt: skip
    db.add_trial(run_id, trial, stages, requests, gzip.compress(TRACE))
    db.add_trial(run_id, TrialRow("setup", 0, "failed", 1700000001.0, error="boom"))
    if status != "running":
        db.finish_run(run_id, status)
    return run_id


def _without(row: dict, *keys: str) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def _content(db: ResultsDB) -> list[dict]:
    """Everything but ids, the run times and the status (checked apart)."""
    out = []
    for run in db.runs():
        trials = []
        for t in db.trials(run["id"]):
            trials.append(
                {
                    "trial": _without(t, "id", "run_id"),
                    "stages": [_without(s, "id", "trial_id") for s in db.stage_energy(t["id"])],
                    "requests": [_without(r, "id", "trial_id") for r in db.requests(t["id"])],
                    "trace": db.trace(t["id"]),
                }
            )
        fresh = ("id", "created_unix_s", "finished_unix_s", "status")
        out.append({"run": _without(run, *fresh), "trials": trials})
    return out


def test_runs_move_between_databases_unchanged(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "node.db") as node, ResultsDB(tmp_path / "main.db") as main:
        _write_run(main, "existing", "ok", 3)  # the main database already has rows: ids must be remapped
        _write_run(node, "k1", "ok", 4)
        _write_run(node, "k2", "failed", 6)
        _write_run(node, "k3", "running", 8)  # cut off when its task ended
        exported = pickle.loads(pickle.dumps(export_runs(node)))  # what Ray carries between nodes
        new_ids = import_runs(main, exported)
        assert len(new_ids) == 3 and 1 not in new_ids
        assert [r["status"] for r in main.runs()] == ["ok", "ok", "failed", "interrupted"]
        assert _content(main)[1:] == _content(node)
        # a finished run keeps its own times and the version that measured it; a cut-off one ends where its
        # record ends: its last trial's end, or its start if that is later (these trials are back-dated)
        node_runs, main_runs = node.runs(), main.runs()[1:]
        for before, after in zip(node_runs, main_runs, strict=True):
            assert after["created_unix_s"] == before["created_unix_s"]
            assert after["joulebench_version"] == before["joulebench_version"]
        assert [r["finished_unix_s"] for r in main_runs[:2]] == [r["finished_unix_s"] for r in node_runs[:2]]
        cut = node.trials(node_runs[2]["id"])
        ends = [t["started_unix_s"] + (t["duration_s"] or 0) for t in cut]
        assert main_runs[2]["finished_unix_s"] == max(node_runs[2]["created_unix_s"], *ends)
        again = ResultsDB(tmp_path / "again.db")
        import_runs(again, exported)
        assert again.runs()[2]["finished_unix_s"] == main_runs[2]["finished_unix_s"]  # the same every time
        again.close()
        moved = main.trials(new_ids[0], "generation")[0]
        assert main.trace(moved["id"]) == [json.loads(line) for line in TRACE.decode().splitlines()]
        assert main.stage_energy(moved["id"])[1]["flags"] == "a,b"
        assert main.requests(moved["id"])[0]["itl_s"] == [0.01, 0.02]


def test_an_empty_node_database_moves_nothing(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "node.db") as node, ResultsDB(tmp_path / "main.db") as main:
        assert export_runs(node) == []
        assert import_runs(main, []) == []
        assert main.runs() == []

"""`joulebench db recompute` on a real database written before schema 2 (vLLM 0.26 on an H200, part 6d of
the GPU study): migrated, every window computed again from its trace with its bound, the repeats'
metrics following, the runner's own flags and idle baselines kept."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.store.db import ResultsDB

RAW = Path(__file__).parents[2] / "docs" / "results" / "h200-2026-11-26" / "raw" / "part6d-gpu0v.db.gz"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "part6d.db"
    with gzip.open(RAW) as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT trial_id, stage, component, device, start_s, end_s, energy_j, uncertainty_j,"
            " idle_power_w, flags FROM stage_energy ORDER BY trial_id, stage, component, device"
        ).fetchall()
    finally:
        conn.close()


def _recompute(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", "db", "recompute", str(path)], capture_output=True, text=True
    )


def test_an_old_database_is_computed_again_with_bounds(old_db: Path) -> None:
    conn = sqlite3.connect(old_db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    before = {
        (r[0], r[1], r[2], r[3]): (r[4], r[5], r[6], r[7], r[8])
        for r in conn.execute(
            "SELECT trial_id, stage, component, device, start_s, end_s, energy_j, idle_power_w, flags"
            " FROM stage_energy"
        )
    }
    conn.close()

    proc = _recompute(old_db)
    assert proc.returncode == 0, proc.stderr
    assert "7 trials computed again" in proc.stdout
    assert "roofline" not in proc.stdout  # this database has none: nothing to say of them
    conn = sqlite3.connect(old_db)  # brought up to the schema of this release, roofline traces and all
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"roofline", "roofline_traces"} <= tables

    after = _rows(old_db)
    assert len(after) == len(before)
    for trial, stage, comp, device, start, end, energy, bound, idle, flags in after:
        old_start, old_end, old_energy, old_idle, old_flags = before[(trial, stage, comp, device)]
        assert (start, end) == (old_start, old_end)  # the run's windows, as it marked them
        assert idle == old_idle  # the baseline the run compared with
        assert flags == old_flags  # "tokens-interpolated" on the steady windows stays
        if energy is None:
            continue
        assert bound is not None and bound > 0
        # the old rule's figure lies within the new one's bound for these second-long windows
        assert abs(energy - old_energy) <= bound, (stage, energy, old_energy, bound)
        if stage == "generate":
            assert bound < 0.01 * energy  # a repeat of 40 s or so: well under a percent

    with ResultsDB(old_db) as db:
        for trial in db.trials(db.runs()[-1]["id"], kind="generation"):
            if trial["status"] != "ok":
                continue
            metrics = trial["details"]["metrics"]
            (window,) = [
                r for r in db.stage_energy(trial["id"]) if r["stage"] == "generate" and r["device"] == "all"
            ]
            assert metrics["energy_j.gpu"] == pytest.approx(window["energy_j"])
            assert metrics["j_per_token.gpu"] == pytest.approx(window["energy_j"] / metrics["output_tokens"])
            assert metrics["bound.j_per_token.gpu"] == pytest.approx(
                window["uncertainty_j"] / metrics["output_tokens"]
            )

    # computing again what was computed gives the same rows
    assert _recompute(old_db).returncode == 0
    assert _rows(old_db) == after


def test_a_missing_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _recompute(tmp_path / "nowhere.db")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such database file" in proc.stderr

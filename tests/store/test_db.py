from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.errors import StoreError, UsageError
from joulebench.measurement.records import Component, ComponentEnergy, Method, StageResult
from joulebench.store.db import ResultsDB
from joulebench.store.migrate import MIGRATIONS
from joulebench.store.rows import NO_COMPONENT, RequestRow, StageEnergyRow, TrialRow, stage_rows
from joulebench.store.schema import SCHEMA_VERSION


def _run(db: ResultsDB, **over: object) -> int:
    args: dict[str, object] = dict(
        engine="transformers",
        model="/m",
        workload="smoke",
        batch_size=2,
        output_tokens=8,
        length_mode="fixed",
        device="cpu",
        config={"repeats": 2},
        environment={"hostname": "h"},
    )
    args.update(over)
    return db.create_run(**args)  # type: ignore[arg-type]


def test_write_and_read_back(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        assert db.schema_version == SCHEMA_VERSION
        run_id = _run(db)
        stage = StageResult(
            "generate",
            1.0,
            3.0,
            (ComponentEnergy(Component.CPU, "all", 12.0, 2.0, 6.0, 7.5, Method.ESTIMATED, flags=("x",)),),
        )
        trace = gzip.compress(b'{"t_s": 1.0, "power_w": 5}\n')
        trial_id = db.add_trial(
            run_id,
            TrialRow(
                "generation", 0, "ok", 100.0, duration_s=2.0, output_tokens=16, details={"metrics": {"a": 1}}
            ),
            stage_rows(stage),
            [RequestRow(0, 8, prompt_tokens=5, ttft_s=0.1, itl_s=(0.01, 0.02))],
            trace,
        )
        db.update_run(run_id, engine_version="5.0", environment={"hostname": "h2"})
        db.finish_run(run_id, "ok")

        run = db.run(run_id)
        assert run["status"] == "ok" and run["engine_version"] == "5.0"
        assert run["config"] == {"repeats": 2} and run["environment"] == {"hostname": "h2"}
        assert run["finished_unix_s"] is not None
        (trial,) = db.trials(run_id)
        assert trial["id"] == trial_id and trial["details"] == {"metrics": {"a": 1}}
        (row,) = db.stage_energy(trial_id)
        assert (row["component"], row["energy_j"], row["estimated"], row["method"]) == (
            "cpu",
            12.0,
            1,
            "estimated",
        )
        assert row["flags"] == "x"
        (req,) = db.requests(trial_id)
        assert req["itl_s"] == [0.01, 0.02] and req["output_tokens"] == 8
        assert db.trace(trial_id) == [{"t_s": 1.0, "power_w": 5}]
        assert [r["id"] for r in db.runs(engine="transformers")] == [run_id]
        assert db.runs({"engine": "vllm"}) == []


def test_a_window_without_components_keeps_its_times(tmp_path: Path) -> None:
    rows = stage_rows(StageResult("import", 2.0, 5.0, ()))
    assert len(rows) == 1
    assert rows[0].component == NO_COMPONENT and rows[0].energy_j is None
    assert (rows[0].start_s, rows[0].end_s) == (2.0, 5.0)
    assert "no-energy-source" in rows[0].flags


def test_wal_mode_and_one_transaction_per_trial(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        run_id = _run(db)
        db.add_trial(run_id, TrialRow("generation", 0, "ok", 1.0))
        bad_stage = StageEnergyRow("generate", "gpu", "all", 0.0, 1.0, 1.0, None)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):  # method NOT NULL: the whole trial is rolled back
            db.add_trial(run_id, TrialRow("generation", 1, "ok", 2.0), [bad_stage])
        assert [t["repeat_index"] for t in db.trials(run_id)] == [0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM stage_energy").fetchone()[0] == 0
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    ResultsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this joulebench"):
        ResultsDB(path)


def test_newer_schema_through_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    ResultsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    # An existing database is checked before the run's input, so the missing model is not reached.
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run", "--db", str(path), "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "schema version 999" in proc.stderr


def test_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a joulebench results database"):
        ResultsDB(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no meta table"):
        ResultsDB(other)
    with pytest.raises(StoreError, match="does not exist"):
        ResultsDB(tmp_path / "no" / "such" / "dir.db")


def test_older_schema_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    ResultsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    conn.commit()
    conn.close()
    steps: list[int] = []

    def step(c: sqlite3.Connection) -> None:
        steps.append(SCHEMA_VERSION - 1)
        c.execute("CREATE TABLE migrated_marker (x)")

    monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION - 1, step)
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION
    assert steps == [SCHEMA_VERSION - 1]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    conn.close()


def test_old_schema_without_a_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ResultsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no migration"):
        ResultsDB(path)


def test_unknown_run_filter(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db, pytest.raises(UsageError, match="unknown run filter"):
        db.runs(colour="blue")


def test_json_columns_are_valid_json(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        run_id = _run(db, config={"nan": float("nan")})
    conn = sqlite3.connect(tmp_path / "r.db")
    (raw,) = conn.execute("SELECT config_json FROM runs WHERE id = ?", (run_id,)).fetchone()
    conn.close()
    assert json.loads(raw) == {"nan": None}


def test_a_database_another_process_created_meanwhile_is_opened_not_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report or a test opens the database a run is creating: both read "empty"; the run takes the write
    # lock first and creates the schema. The late one must find it under the lock, not insert it again.
    from joulebench.store import migrate

    path = tmp_path / "r.db"
    real = migrate.schema_version
    raced: list[bool] = []

    def read_then_lose_the_race(conn: sqlite3.Connection) -> int | None:
        version = real(conn)
        if not raced:
            raced.append(True)
            with ResultsDB(path) as other:  # the other process, between this read and the lock
                other.create_run(
                    engine="transformers", model="m", workload="smoke", batch_size=1, output_tokens=1,
                    length_mode="fixed", device="cpu", config={}, environment={},
                )  # fmt: skip
        return version

    monkeypatch.setattr(migrate, "schema_version", read_then_lose_the_race)
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        assert [r["engine"] for r in db.runs()] == ["transformers"]  # the other's data is intact

"""`joulebench db merge`: runs of several machines in one database, each whole, each saying where it came
from, none twice."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
from pathlib import Path

from joulebench.measurement.records import Component, ComponentEnergy, Method, StageResult
from joulebench.store.db import ResultsDB
from joulebench.store.rows import TrialRow, stage_rows
from tests.store.test_db import _run


def _database(path: Path, host: str, runs: list[tuple[str, float]]) -> None:
    """A database as a machine leaves it: each run with a generation trial and its energy window."""
    with ResultsDB(path) as db:
        for i, (engine, energy_j) in enumerate(runs):
            run = _run(db, engine=engine, environment={"hostname": host, "gpus": [{"uuid": f"GPU-{host}"}]})
            stage = StageResult(
                "generate", 10.0 + i, 12.0 + i,
                (ComponentEnergy(Component.GPU, "gpu0", energy_j, 2.0, energy_j / 2, energy_j, Method.COUNTER,
                                 uncertainty_j=0.5),),
            )  # fmt: skip
            trial = TrialRow(
                "generation", 0, "ok", 1.7e9 + i, duration_s=2.0, output_tokens=100, n_requests=2
            )
            db.add_trial(run, trial, stage_rows(stage), (), None)
            db.finish_run(run, "ok")


def _joulebench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args], capture_output=True, text=True, timeout=120
    )


def _energies(path: Path) -> list[tuple[str, str, float]]:
    with ResultsDB(path) as db:
        return sorted(
            (r["engine"], r["environment"]["hostname"], s["energy_j"])
            for r in db.runs() for t in db.trials(r["id"]) for s in db.stage_energy(t["id"])
        )  # fmt: skip


def test_merge_keeps_every_run_whole_with_its_origin(tmp_path: Path) -> None:
    a, b, out = tmp_path / "gpu0.db", tmp_path / "gpu1.db", tmp_path / "all.db"
    _database(a, "node-a", [("vllm", 200.0), ("transformers", 900.0)])
    _database(b, "node-b", [("deepspeed", 850.0)])
    proc = _joulebench("db", "merge", str(a), str(b), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}: 3 runs merged (2 from gpu0.db, 1 from gpu1.db); 0 already there"
    assert _energies(out) == sorted(_energies(a) + _energies(b))
    with ResultsDB(out) as db:
        runs = db.runs()
        origin = {(r["environment"]["merged_from"]["database"], r["environment"]["merged_from"]["run_id"])
                  for r in runs}  # fmt: skip
        assert origin == {("gpu0.db", 1), ("gpu0.db", 2), ("gpu1.db", 1)}
        assert {r["environment"]["gpus"][0]["uuid"] for r in runs} == {"GPU-node-a", "GPU-node-b"}
        assert all(r["status"] == "ok" and r["finished_unix_s"] for r in runs)
        assert all(str(tmp_path) not in str(r["environment"]) for r in runs)  # no machine path
    # again, and a merge of the merge: nothing twice, the first origin kept
    proc = _joulebench("db", "merge", str(a), str(b), "-o", str(out))
    assert proc.stdout.strip().endswith("0 runs merged (0 from gpu0.db, 0 from gpu1.db); 3 already there")
    again = tmp_path / "again.db"
    assert _joulebench("db", "merge", str(out), "-o", str(again)).returncode == 0
    with ResultsDB(again) as db:
        assert {r["environment"]["merged_from"]["database"] for r in db.runs()} == {"gpu0.db", "gpu1.db"}


def test_compressed_databases_merge_as_they_came_back(tmp_path: Path) -> None:
    """Results come back from a GPU machine gzip-compressed: they merge as they are, named without the
    .gz, and the compressed file is left untouched."""
    a, b, out = tmp_path / "gpu0.db", tmp_path / "gpu1.db", tmp_path / "all.db"
    _database(a, "node-a", [("vllm", 200.0)])
    _database(b, "node-b", [("deepspeed", 850.0), ("transformers", 900.0)])
    packed = tmp_path / "gpu1.db.gz"
    packed.write_bytes(gzip.compress(b.read_bytes()))
    before = packed.read_bytes()
    proc = _joulebench("db", "merge", str(a), str(packed), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}: 3 runs merged (1 from gpu0.db, 2 from gpu1.db); 0 already there"
    assert _energies(out) == sorted(_energies(a) + _energies(b))
    assert packed.read_bytes() == before
    not_gzip = tmp_path / "gpu2.db.gz"
    not_gzip.write_bytes(a.read_bytes())
    proc = _joulebench("db", "merge", str(not_gzip), "-o", str(tmp_path / "new.db"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"joulebench: error: {not_gzip}: not a gzip-compressed database")
    assert not (tmp_path / "new.db").exists()


def test_bad_merges_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    a, out = tmp_path / "a.db", tmp_path / "out.db"
    _database(a, "h", [("vllm", 1.0)])
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database\n")
    for args, words in [
        ([str(tmp_path / "missing.db"), "-o", str(out)], "missing.db: no such database file"),
        ([str(a), "-o", str(a)], "is one of the databases to merge"),
        ([str(a), str(a), "-o", str(out)], "a database is named twice"),
        ([str(a), str(foreign), "-o", str(out)], "notes.txt"),
    ]:
        proc = _joulebench("db", "merge", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("joulebench: error: ") and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not out.exists()
    assert foreign.read_text() == "not a database\n"


def test_each_cards_roofline_comes_along_once(tmp_path: Path) -> None:
    from joulebench.store.rows import RooflineRow

    def card(host: str, kernel: str, start_s: float) -> RooflineRow:
        return RooflineRow(1.7e9, host, "0.1", "gpu0", "NVIDIA H100 80GB HBM3", kernel, "byte", "float32",
                           4e12, start_s, start_s + 10, 2000.0, "counter", device_uuid=f"GPU-{host}",
                           uncertainty_j=1.5, idle_power_w=70.0, above_idle_energy_j=1300.0,
                           flags=("x",), environment={"device": {"name": "H100"}})  # fmt: skip

    _database(tmp_path / "a.db", "node-a", [("vllm", 100.0)])
    _database(tmp_path / "b.db", "node-b", [("vllm", 90.0)])
    with ResultsDB(tmp_path / "a.db") as db:
        db.add_roofline([card("node-a", "copy", 5.0), card("node-a", "gemm", 16.0)], [b"copy-trace", None])
    with ResultsDB(tmp_path / "b.db") as db:
        db.add_roofline([card("node-b", "copy", 5.0)])
    for _ in range(2):  # merging again adds nothing
        proc = _joulebench("db", "merge", str(tmp_path / "a.db"), str(tmp_path / "b.db"), "-o",
                           str(tmp_path / "all.db"))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    with ResultsDB(tmp_path / "all.db") as db:
        rows = db.roofline()
    assert sorted((r["host"], r["kernel"]) for r in rows) == [
        ("node-a", "copy"), ("node-a", "gemm"), ("node-b", "copy")
    ]  # fmt: skip
    first = next(r for r in rows if r["host"] == "node-a" and r["kernel"] == "copy")
    assert (first["energy_j"], first["uncertainty_j"], first["flags"]) == (2000.0, 1.5, "x")
    assert first["environment"] == {"device": {"name": "H100"}}
    with ResultsDB(tmp_path / "all.db") as db:  # the readings come along with the row that has them
        traces = {(r["host"], r["kernel"]): db.roofline_trace_bytes(r["id"]) for r in rows}
    assert traces == {("node-a", "copy"): b"copy-trace", ("node-a", "gemm"): None, ("node-b", "copy"): None}


def test_sources_are_only_read(tmp_path: Path) -> None:
    """A source of an older schema is brought up to date in a copy, not in place; one that a writer still
    holds open merges with the runs in its write-ahead log; neither gains a byte or a file beside it."""
    from contextlib import closing

    from joulebench.store.schema import SCHEMA_VERSION

    old, live, out = tmp_path / "old" / "gpu0.db", tmp_path / "live" / "gpu1.db", tmp_path / "all.db"
    old.parent.mkdir()
    live.parent.mkdir()
    _database(old, "node-a", [("vllm", 200.0)])
    conn = sqlite3.connect(old)
    for column in ("submit_s", "first_token_s", "finish_s", "energy_j", "energy_estimated"):
        conn.execute(f"ALTER TABLE requests DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    conn.commit()
    conn.close()
    _database(live, "node-b", [("deepspeed", 850.0)])
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # the new run stays in the log, as a live writer's does
    _copy_last_run(writer, "transformers")
    assert Path(f"{live}-wal").stat().st_size > 0
    before = {p: p.read_bytes() for p in (old, live)}
    listed = {p.parent: sorted(q.name for q in p.parent.iterdir()) for p in (old, live)}
    try:
        proc = _joulebench("db", "merge", str(old), str(live), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert (
            proc.stdout.strip() == f"{out}: 3 runs merged (1 from gpu0.db, 2 from gpu1.db); 0 already there"
        )
        assert {p: p.read_bytes() for p in (old, live)} == before
        assert {p.parent: sorted(q.name for q in p.parent.iterdir()) for p in (old, live)} == listed
        with closing(sqlite3.connect(old)) as got:
            (version,) = got.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == str(SCHEMA_VERSION - 1)
    finally:
        writer.close()
    with ResultsDB(out) as db:
        assert sorted(r["engine"] for r in db.runs()) == ["deepspeed", "transformers", "vllm"]
    newer = tmp_path / "newer.db"
    _database(newer, "node-c", [("vllm", 1.0)])
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    proc = _joulebench("db", "merge", str(newer), "-o", str(tmp_path / "none.db"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"joulebench: error: {newer} has schema version {SCHEMA_VERSION + 1}")


def _copy_last_run(conn: sqlite3.Connection, engine: str) -> None:
    """One more run, a copy of the last with another engine, written through a connection that stays
    open (its pages stay in the write-ahead log)."""
    (run_id,) = conn.execute("SELECT MAX(id) FROM runs").fetchone()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    values = dict(zip(columns, row, strict=True))
    values.update(id=run_id + 1, engine=engine, created_unix_s=values["created_unix_s"] + 60)
    marks = ", ".join("?" * len(values))
    conn.execute(f"INSERT INTO runs ({', '.join(values)}) VALUES ({marks})", list(values.values()))
    conn.commit()

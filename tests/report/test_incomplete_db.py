"""`report` and `advise` refuse a database that lacks a table or column in one line (they crashed), and
still read one written before a migration added a column."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.resultsdb import ResultsWriter

RAW = Path(__file__).parents[2] / "docs" / "results" / "h200-2026-11-26" / "raw" / "part6d-gpu0v.db.gz"


def _joulebench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args], capture_output=True, text=True, timeout=300
    )


def _db(tmp_path: Path, damage: str) -> Path:
    path = tmp_path / "r.db"
    w = ResultsWriter(path)
    run = w.run("transformers", "m")
    w.trial(run, "generation", output_tokens=100, n_requests=4)
    w.close()
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("DROP TABLE requests", "table requests"),
        ("ALTER TABLE trials DROP COLUMN cache_state", "trials.cache_state"),
    ],
)
def test_a_database_missing_a_part_is_one_line(tmp_path: Path, damage: str, named: str) -> None:
    db = _db(tmp_path, damage)
    for args in (
        ("report", "--db", str(db), "--out", str(tmp_path / "out")),
        ("advise", "--db", str(db), "--requests-per-day", "10", "--cold-starts-per-day", "1"),
    ):
        proc = _joulebench(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
        assert named in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_database_from_before_a_migration_still_reports(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with gzip.open(RAW) as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    proc = _joulebench("report", "--db", str(db), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "report.html").is_file()
    conn = sqlite3.connect(db)
    assert (
        conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    )  # read only
    conn.close()

"""A database that is refused is left exactly as it was, and a new one is readable by its owner only."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from joulebench.errors import StoreError
from joulebench.store.db import ResultsDB
from joulebench.store.schema import SCHEMA_VERSION


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    ResultsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # as a newer joulebench might leave it
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()


def _corrupt(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)


def _text(path: Path) -> None:
    path.write_text("id,energy_j\n1,2.5\n")


@pytest.mark.parametrize(
    "make", [_foreign, _newer, _corrupt, _text], ids=["foreign", "newer", "corrupt", "text"]
)
def test_a_refused_database_is_not_modified(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.db"
    make(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError):
        ResultsDB(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no -wal or -shm beside it


def test_a_new_database_and_its_journal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ResultsDB(path):
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["r.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_a_database_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"folder .* does not exist|cannot be created"):
        ResultsDB(blocker / "r.db")

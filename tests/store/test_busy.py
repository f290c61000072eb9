"""A database another process holds locked: writes wait, say so, and lose nothing; a run goes on."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from joulebench.errors import UsageError
from joulebench.store.db import BUSY_ENV, ResultsDB
from tests.store.test_db import _run


def _hold(path: Path, seconds: float) -> threading.Thread:
    """Another writer: takes the write lock and keeps it for ``seconds``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_a_write_waits_for_the_lock_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUSY_ENV, "0.2")
    path = tmp_path / "r.db"
    said: list[str] = []
    with ResultsDB(path, on_busy=said.append) as db:
        first = _run(db)
        holder = _hold(path, 1.5)
        started = time.monotonic()
        second = _run(db)  # without the wait: "database is locked" after the busy timeout, and lost
        holder.join()
        assert time.monotonic() - started >= 1.4
        assert [r["id"] for r in db.runs()] == [first, second]
    assert len(said) >= 3  # about every 0.2 s
    assert all("is locked by another process" in s and "waiting on" in s for s in said)


def test_opening_a_locked_database_waits_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUSY_ENV, "0.2")
    path = tmp_path / "r.db"
    ResultsDB(path).close()
    holder = _hold(path, 1.0)
    said: list[str] = []
    with ResultsDB(path, on_busy=said.append) as db:  # its schema check takes the lock
        assert db.runs() == []
    holder.join()
    assert said


def test_a_new_database_another_process_is_making_waits_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes making the same database at once: the second finds the first's empty file locked,
    and its switch to WAL waits for it as a write does."""
    monkeypatch.setenv(BUSY_ENV, "0.2")
    path = tmp_path / "r.db"
    holder = _hold(path, 1.0)  # SQLite makes the empty file, and holds it
    assert path.exists() and path.stat().st_size == 0
    said: list[str] = []
    with ResultsDB(path, on_busy=said.append) as db:
        assert db.runs() == []
    holder.join()
    assert said and all("is locked by another process" in s for s in said)


def test_a_bad_busy_setting_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUSY_ENV, "soon")
    with pytest.raises(UsageError, match="JOULEBENCH_DB_BUSY_S='soon' is not a number"):
        ResultsDB(tmp_path / "r.db")
    assert not (tmp_path / "r.db").exists()


def _has_run(path: Path) -> bool:
    """Whether the run's row is stored: the file alone may still be the empty one the run has just made,
    and the lock is to be taken while the run measures."""
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(path, timeout=0.1)) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return False


HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.readline()  # until told to let go (or the test is gone: end of input)
conn.execute("COMMIT")
"""


def test_a_run_keeps_every_repeat_while_another_process_holds_the_database(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """The lock is taken while the run measures (once its run row exists) and held until the run says it
    is waiting for it, however long its next write takes to come: the run waits, says so, and stores
    every trial."""
    db = tmp_path / "r.db"
    env = {**os.environ, BUSY_ENV: "0.3"}
    run = subprocess.Popen(
        [sys.executable, "-m", "joulebench", "run", "--model", str(tiny_llama), "--batch-size", "2",
         "--output-tokens", "4", "--length-mode", "fixed", "--repeats", "3", "--setup-repeats", "1",
         "--device", "cpu", "--idle-s", "0", "--db", str(db)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    printed: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        assert run.stdout is not None
        for line in run.stdout:
            printed.append(line)
            if "is locked by another process" in line:
                waiting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    holder = None
    try:
        deadline = time.monotonic() + 300
        while not _has_run(db) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        said = False
        deadline = time.monotonic() + 600
        while not said and time.monotonic() < deadline and run.poll() is None:
            said = waiting.wait(timeout=0.2)
        assert holder.stdin is not None
        holder.stdin.write("let go\n")
        holder.stdin.close()
        holder.wait(timeout=60)
        run.wait(timeout=600)
        reader.join(timeout=60)
    finally:
        run.kill()
        if holder is not None:
            holder.kill()
    out = "".join(printed)
    assert said, out[-3000:]
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    with ResultsDB(db) as store:
        (row,) = store.runs()
        kinds = [(t["kind"], t["status"]) for t in store.trials(row["id"])]
    assert row["status"] == "ok"
    assert kinds.count(("generation", "ok")) == 3 and kinds.count(("setup", "ok")) == 1

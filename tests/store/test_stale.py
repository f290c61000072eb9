"""A run left "running" is closed only when its manager process, on this host, is gone."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from joulebench.store.db import ResultsDB
from joulebench.store.stale import close_stale_runs
from tests.store.test_db import _run


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_runs_of_gone_processes_on_this_host_are_closed(tmp_path: Path) -> None:
    host = socket.gethostname()
    # a joulebench process that is still at work
    busy = subprocess.Popen(
        [sys.executable, "-m", "joulebench", "measure", "--no-estimate", "--", "sleep", "30"],
        stderr=subprocess.DEVNULL,
    )
    try:
        with ResultsDB(tmp_path / "r.db") as db:
            dead = _run(db, environment={"hostname": host, "pid": _gone_pid()})
            alive = _run(db, environment={"hostname": host, "pid": busy.pid})
            elsewhere = _run(db, environment={"hostname": "another-node", "pid": _gone_pid()})
            older = _run(db, environment={"hostname": host})  # stored before the pid was recorded
            done = _run(db, environment={"hostname": host, "pid": _gone_pid()})
            db.finish_run(done, "ok")
            assert close_stale_runs(db) == [dead]
            status = {r["id"]: r["status"] for r in db.runs()}
    finally:
        busy.kill()
        busy.wait()
    assert status == {
        dead: "interrupted", alive: "running", elsewhere: "running", older: "running", done: "ok"
    }  # fmt: skip


def test_a_reused_pid_running_something_else_is_not_ours(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with ResultsDB(tmp_path / "r.db") as db:
            run = _run(db, environment={"hostname": socket.gethostname(), "pid": sleeper.pid})
            assert close_stale_runs(db) == [run]
    finally:
        sleeper.kill()
        sleeper.wait()

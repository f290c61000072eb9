"""Runs left ``running`` by a process that no longer exists (SIGKILL, a power cut, an OOM kill): closed
as ``interrupted``, so that a resumed sweep and a report never take them for runs still going on."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from joulebench.store.db import ResultsDB


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a joulebench process now (a reused pid that runs something else is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and perhaps theirs
        return True
    try:
        return b"joulebench" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): the pid exists, count it alive


def is_stale(run: dict[str, Any], hostname: str | None = None) -> bool:
    """A ``running`` run whose manager process, on this host, is gone. Runs of other hosts (a Ray node's,
    a shared file system's) and runs stored before the manager's pid was recorded are left alone: there
    is no telling from here."""
    env = run.get("environment") or {}
    pid = env.get("pid")
    here = hostname or socket.gethostname()
    return (
        run["status"] == "running"
        and env.get("hostname") == here
        and isinstance(pid, int)
        and not _alive(pid)
    )


def close_stale_runs(db: ResultsDB) -> list[int]:
    """Mark every stale run ``interrupted``; returns their ids."""
    closed = []
    for run in db.runs(status="running"):
        if is_stale(run):
            db.finish_run(run["id"], "interrupted")
            closed.append(int(run["id"]))
    return closed

"""Other libraries' output goes to the run's log, joulebench's own to the terminal.

Engines and their dependencies print warnings, log records and progress bars, from Python and from C
(transformers' GGUF notes, DeepSpeed's accelerator line, tqdm bars). While a command runs, file
descriptors 1 and 2 point at the log, so all of it lands there whoever writes it; joulebench writes its
progress and results through :class:`Streams`, duplicates of the terminal's descriptors taken before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from joulebench.errors import UsageError

#: The folder, beside the results database, that keeps each run's logs.
LOG_DIR_NAME = "joulebench-logs"


@dataclass(frozen=True)
class Streams:
    """Where joulebench's own words go: the terminal (or whatever stdout and stderr were)."""

    out: TextIO
    err: TextIO


def new_log_dir(db: str | Path, kind: str) -> Path:
    """A fresh, owner-only folder for one command's logs: ``joulebench-logs/<kind>-<time>-<pid>`` beside
    the database (logs may quote prompts and paths, like the database itself)."""
    where = Path(db).expanduser()
    # the database's own refusals, said before anything is made beside a path that cannot be one
    if where.is_dir():
        raise UsageError(f"--db {where} is a directory, not a database file")
    if not where.parent.is_dir():
        raise UsageError(f"--db {where}: folder {where.parent} does not exist")
    base = where.resolve().parent / LOG_DIR_NAME
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{kind}-{stamp}-{os.getpid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        path.mkdir(mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot create the log folder {path}: {exc.strerror or exc}") from None
    return path


def remove_log_dir(path: Path) -> None:
    """Take back a log folder that holds nothing of use (the command refused its input), and the
    ``joulebench-logs`` folder too when nothing else is left in it."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _fd(stream: TextIO, expected: int) -> bool:
    try:
        return stream.fileno() == expected
    except (AttributeError, OSError, ValueError):  # a test runner's buffer, a closed stream
        return False


@contextlib.contextmanager
def to_log(log_path: Path, *, enabled: bool = True) -> Iterator[Streams]:
    """Send everything printed inside the block to ``log_path`` (owner-only, appended); yield the streams
    for joulebench's own output. ``enabled=False`` (``--verbose``) leaves every stream as it is."""
    if not enabled:
        yield Streams(sys.stdout, sys.stderr)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    log = open(fd, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    saved = {n: os.dup(n) for n in (1, 2) if _fd((sys.stdout, sys.stderr)[n - 1], n)}
    user_out = open(saved[1], "w", buffering=1, closefd=False) if 1 in saved else sys.stdout  # noqa: SIM115
    user_err = open(saved[2], "w", buffering=1, closefd=False) if 2 in saved else sys.stderr  # noqa: SIM115
    old = sys.stdout, sys.stderr
    for n in saved:
        os.dup2(fd, n)
    sys.stdout = sys.stderr = log
    try:
        yield Streams(user_out, user_err)
    finally:
        log.flush()
        sys.stdout, sys.stderr = old
        for n, copy in saved.items():
            os.dup2(copy, n)
        for stream in (user_out, user_err):
            if stream not in old:
                stream.flush()
                stream.close()
        for copy in saved.values():
            os.close(copy)
        log.close()

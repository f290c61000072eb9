"""A server process started for a benchmark: its own process group, its output in a log file, stopped
in steps (SIGINT, SIGTERM, SIGKILL) so that a clean shutdown is tried first and nothing is left behind.

While the server starts, a thread reads its log as it grows and stamps every line with the monotonic
instant it was read, so that an adapter can turn the server's own log records into stage boundaries.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from joulebench.errors import EngineError, UsageError

_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogLine:
    """One line of the server's output and the ``time.monotonic()`` instant it was read."""

    t_s: float
    text: str


def parse_command(command: str) -> list[str]:
    """Split a ``--server-cmd`` string as a POSIX shell would, without running a shell."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"cannot parse the server command {command!r}: {exc}") from None
    if not argv:
        raise UsageError("the server command is empty")
    return argv


def first_times(lines: Iterable[LogLine], classify: Callable[[str], str | None]) -> dict[str, float]:
    """For each event name ``classify`` gives a line, the read instant of its first line."""
    found: dict[str, float] = {}
    for line in lines:
        name = classify(line.text)
        if name is not None:
            found.setdefault(name, line.t_s)
    return found


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child hook that asks the kernel to SIGTERM the child when we die: a process killed
    with SIGKILL must not leave a server or an engine worker (and its GPU memory and power draw) behind.
    Its own session keeps it out of our process group, so nothing else would reach it."""
    # The signal follows the *thread* that forked; only the main thread lives as long as the process.
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork, called after it
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


class ServerProcess:
    """One server child process. ``start`` it, ``wait_until`` it answers, ``stop`` it (also at exit)."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | Path,
        env: Mapping[str, str] | None = None,
        poll_s: float = 0.02,
    ) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.poll_s = poll_s
        self.started_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[LogLine] = []
        self._lock = threading.Lock()
        self._tail_stop = threading.Event()
        self._tailer: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited, else ``None``."""
        return self._proc.poll() if self._proc else None

    def start(self) -> float:
        """Spawn the server; returns the monotonic instant just before the spawn."""
        if self._proc is not None:
            raise EngineError("the server was already started")
        # Python servers buffer stdout when it is a file; unbuffered, a line is read when it is written.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.started_s = time.monotonic()
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: stop() reaches every child it forks
                    preexec_fn=die_with_parent(),
                )
            except FileNotFoundError:
                raise UsageError(f"server command not found: {self.argv[0]}") from None
            except PermissionError:
                raise UsageError(f"server command is not executable: {self.argv[0]}") from None
        atexit.register(self.stop)
        self._tailer = threading.Thread(target=self._tail, name="joulebench-server-log", daemon=True)
        self._tailer.start()
        return self.started_s

    def wait_until(
        self, answers: Callable[[], bool], timeout_s: float, probe_interval_s: float = 0.1
    ) -> float:
        """Call ``answers`` until it returns true; returns that instant. A server that exits first, or
        does not answer within ``timeout_s``, is stopped and raises :class:`EngineError`."""
        if self._proc is None or self.started_s is None:
            raise EngineError("the server was not started")
        deadline = self.started_s + timeout_s
        try:
            while True:
                rc = self._proc.poll()
                if rc is not None:
                    raise EngineError(
                        f"server command exited with code {rc} before answering; {self._last()}"
                    )
                if answers():
                    t = time.monotonic()
                    # A server that exits right after "answering" was not ours (e.g. the port was taken).
                    if self._proc.poll() is not None:
                        raise EngineError(
                            f"server command exited with code {self._proc.poll()}; {self._last()}"
                        )
                    return t
                if time.monotonic() > deadline:
                    raise EngineError(f"server did not answer within {timeout_s:g} s; {self._last()}")
                time.sleep(probe_interval_s)
        except BaseException:
            self.stop()
            raise

    def lines(self) -> list[LogLine]:
        """The log lines read so far, with their read instants."""
        with self._lock:
            return list(self._lines)

    def stop_tailing(self) -> list[LogLine]:
        """Stop reading the log (the server keeps writing it); returns every line read."""
        self._tail_stop.set()
        if self._tailer is not None:
            self._tailer.join(timeout=5.0)
        return self.lines()

    def tail(self, n: int = 5) -> list[str]:
        """The last ``n`` non-empty lines of the log file, read from the file itself."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [s.strip() for s in text.replace("\r", "\n").splitlines() if s.strip()][-n:]

    def stop(self, sigint_s: float = 20.0, sigterm_s: float = 10.0, sigkill_s: float = 5.0) -> int | None:
        """Stop the whole process group: SIGINT, then SIGTERM, then SIGKILL, each after its timeout.
        Returns the server's exit code (``None`` if it was never started). Safe to call twice."""
        atexit.unregister(self.stop)
        proc = self._proc
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session made the server the leader of its own group
        for sig, wait_s in (
            (signal.SIGINT, sigint_s),
            (signal.SIGTERM, sigterm_s),
            (signal.SIGKILL, sigkill_s),
        ):
            if not self._group_alive(proc, pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while self._group_alive(proc, pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.stop_tailing()
        return proc.poll()

    @staticmethod
    def _group_alive(proc: subprocess.Popen[bytes], pgid: int) -> bool:
        proc.poll()  # reap the leader, so that a zombie leader does not count as alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a member changed user; it still exists
            return True
        return True

    def _last(self) -> str:
        lines = " | ".join(s[:200] for s in self.tail(5)) or "(no output)"
        return f"log {self.log_path}; last lines: {lines}"

    def _tail(self) -> None:
        partial = b""
        with open(self.log_path, "rb") as f:
            while True:
                stopping = self._tail_stop.is_set()
                chunk = f.read()
                if chunk:
                    t = time.monotonic()
                    *complete, partial = (partial + chunk).split(b"\n")
                    new = [LogLine(t, b.decode(errors="replace").rstrip("\r")) for b in complete]
                    with self._lock:
                        self._lines.extend(new)
                if stopping:
                    return
                if not chunk:
                    self._tail_stop.wait(self.poll_s)

"""The manager's side of one worker process: spawn, send commands, wait for events under a timeout, kill.

The manager never trusts a worker's state: a worker that dies, reports an error or misses its deadline
raises :class:`WorkerFailed` carrying the last lines of its stderr, and is killed with its whole process
group (engines such as vLLM start processes of their own).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, NoReturn

from joulebench.engines.server import die_with_parent
from joulebench.errors import EngineError
from joulebench.runner import protocol

STDERR_TAIL_LINES = 15


class WorkerFailed(EngineError):
    """A worker crashed, hung past its timeout or reported an error; ``str()`` is the stored error."""

    def __init__(
        self, message: str, *, timed_out: bool = False, usage: str | None = None, out_of_memory: bool = False
    ) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.usage = usage  # the worker rejected its input (a UsageError there): this one line
        self.out_of_memory = out_of_memory  # the engine ran out of device memory


class WorkerProcess:
    """``python -m joulebench.runner.worker`` with its spec on stdin and events on a private pipe."""

    def __init__(self, spec: dict[str, Any], *, log_dir: Path, name: str, env: dict[str, str] | None = None):
        self.spec = spec
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawn_s: float | None = None
        self.started_s: float | None = None  # the worker interpreter's own start, as it reports it
        self._fd: int | None = None
        self._log_start = 0  # where this worker's output begins in its (appended) log
        self._buffer = b""
        self._lines: deque[str] = deque()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> float:
        """Spawn the worker and send its spec; returns the monotonic instant just before the spawn."""
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **(self.env or {})}
        # appended: the workers of a sweep's runs share names, and every one's log is kept
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"==== joulebench worker {self.name}, started {stamp} ====\n".encode())
            log.flush()
            self._log_start = log.tell()
            self.spawn_s = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "joulebench.runner.worker", "--result-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=env,
                start_new_session=True,  # Ctrl-C reaches the manager only; kill() takes the whole group
                preexec_fn=die_with_parent(),  # a manager killed outright takes its worker with it
            )
        os.close(write_fd)
        self._fd = read_fd
        self.send(self.spec)
        return self.spawn_s

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(protocol.dumps(message).encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # a dead worker is reported by the wait that follows, with its stderr

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next message, which must be ``event``; raises :class:`WorkerFailed` otherwise."""
        message = self.poll_for(event, time.monotonic() + timeout_s, deadline=True)
        assert message is not None
        return message

    def poll_for(self, event: str, until_s: float, *, deadline: bool = False) -> dict[str, Any] | None:
        """Like :meth:`wait_for`, waiting until the monotonic instant ``until_s``: None if ``event`` has not
        come by then, unless ``deadline`` (then the worker has timed out and is killed)."""
        while True:
            message = self._next_message(until_s, deadline)
            if message is None:
                return None
            kind = message.get("event")
            if kind == event:
                return message
            if kind == "error":
                error = str(message.get("error", ""))
                usage = error.split(": ", 1)[-1].splitlines()[0] if message.get("usage") else None
                oom = bool(message.get("out_of_memory"))
                self._fail(f"{message.get('where', '')}: {error}", usage=usage, out_of_memory=oom)
            if kind != "started":
                self._fail(f"protocol error: expected {event!r}, got {kind!r}")
            self.started_s = float(message["t_s"])

    def _next_message(self, until_s: float, deadline: bool = True) -> dict[str, Any] | None:
        assert self.proc is not None and self._fd is not None
        while not self._lines:
            remaining = until_s - time.monotonic()
            if remaining <= 0:
                if not deadline:
                    return None
                self._fail("timed out", timed_out=True)
            ready, _, _ = select.select([self._fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(self._fd, 1 << 16)
                if chunk:
                    self._buffer += chunk
                    *lines, self._buffer = self._buffer.split(b"\n")
                    self._lines.extend(line.decode() for line in lines if line.strip())
                    continue
                # End of file: the worker closed its end, so it is exiting.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
                self._fail(self._exit_text())
            elif self.proc.poll() is not None:
                # Dead, though a process it forked may still hold the pipe open.
                self._fail(self._exit_text())
        return json.loads(self._lines.popleft())  # type: ignore[no-any-return]

    def _fail(
        self, message: str, *, timed_out: bool = False, usage: str | None = None, out_of_memory: bool = False
    ) -> NoReturn:
        text = self._with_tail(message)
        self.kill()
        raise WorkerFailed(text, timed_out=timed_out, usage=usage, out_of_memory=out_of_memory)

    def _exit_text(self) -> str:
        assert self.proc is not None
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            try:
                return f"worker killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"worker killed by signal {-rc}"
        return f"worker exited with code {rc}"

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(self._log_start, f.seek(0, os.SEEK_END) - 16384))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _with_tail(self, message: str) -> str:
        tail = self.stderr_tail()
        return f"{message}\n{tail}" if tail else message

    def close(self, timeout_s: float = 60.0) -> None:
        """Ask the worker to release its engine and exit; kill it if it does not in ``timeout_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.send({"cmd": "close"})
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(timeout=timeout_s)
            except (subprocess.TimeoutExpired, OSError):
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (idempotent) and release the pipe."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a process in uninterruptible sleep
            self.proc.wait(timeout=10)
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

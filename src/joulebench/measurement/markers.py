"""Stage marks: how a measured program says when a lifecycle stage begins and ends.

The measuring process (a :class:`~joulebench.measurement.monitor.Monitor`) samples energy; the program
being measured only reports instants. Three ways, one format:

* in-process: ``with monitor.stage("load"): ...``
* from a child process, Python: ``with joulebench.stage("load"): ...`` writes to the file named by the
  environment variable ``JOULEBENCH_STAGE_FILE`` (set by ``joulebench measure`` and the runner); without
  that variable and without an active monitor it does nothing, so instrumented code runs anywhere;
* from any other program: append lines to that file (documented in docs/stage-protocol.md)::

      begin NAME [mono=T|unix=T]
      end NAME [mono=T|unix=T]

  ``mono`` is ``CLOCK_MONOTONIC`` seconds (system-wide on Linux, so it lines up with the monitor's
  samples); ``unix`` is wall-clock seconds; without either, the monitor stamps the line when it reads it.

Engine adapters receive a :class:`StageMarks` and may also report a stage after the fact from the
engine's own log timestamps with :meth:`StageMarks.span`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

STAGE_FILE_ENV = "JOULEBENCH_STAGE_FILE"


class StageMarks(Protocol):
    """Where stage boundaries go. Times are ``time.monotonic()`` seconds; ``None`` means now."""

    def begin(self, name: str, t_s: float | None = None) -> None: ...

    def end(self, name: str, t_s: float | None = None) -> None: ...

    def span(self, name: str, start_s: float, end_s: float) -> None:
        """A whole stage at once, e.g. from an engine's log records after the fact."""
        ...


@contextmanager
def marked(marks: StageMarks, name: str) -> Iterator[None]:
    """``with marked(marks, "model_load"): ...`` — begin and end around a block."""
    marks.begin(name)
    try:
        yield
    finally:
        marks.end(name)


# -- joulebench.stage(): the measured program's side --------------------------------------------------

_active: list[StageMarks] = []


def validate_stage_name(name: str) -> str:
    """Stage names are one word of printable characters: the stage-file protocol is space-separated."""
    from joulebench.errors import UsageError

    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or not name.isprintable():
        raise UsageError(f"invalid stage name {name!r}: use one word without spaces")
    return name


def register_active(marks: StageMarks) -> None:
    """Make ``marks`` (a started Monitor) receive :func:`stage` marks of this process."""
    _active.append(marks)


def unregister_active(marks: StageMarks) -> None:
    if marks in _active:
        _active.remove(marks)


def stage_file_line(event: str, name: str, t_s: float) -> str:
    """One protocol line: ``begin NAME mono=T`` (``T`` in ``time.monotonic()`` seconds)."""
    return f"{event} {name} mono={t_s!r}\n"


def append_stage_line(path: str, event: str, name: str, t_s: float) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor, so lines from several
    processes or threads never interleave."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, stage_file_line(event, name, t_s).encode())
    finally:
        os.close(fd)


def _mark(event: str, name: str) -> None:
    import os
    import time

    t_s = time.monotonic()
    for marks in list(_active):
        (marks.begin if event == "begin" else marks.end)(name, t_s)
    path = os.environ.get(STAGE_FILE_ENV)
    # a monitor of this process that follows the file has the mark already: writing it would repeat it
    followed = any(getattr(m, "follows", lambda _p: False)(path) for m in _active) if path else False
    if path and not followed:
        append_stage_line(path, event, name, t_s)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """``with joulebench.stage("load"): ...`` marks a stage wherever a monitor listens.

    It records in every started in-process :class:`~joulebench.measurement.monitor.Monitor` and, when
    ``$JOULEBENCH_STAGE_FILE`` is set (under ``joulebench measure`` or the runner), appends to that file.
    With neither, it does nothing, so instrumented code runs anywhere.
    """
    validate_stage_name(name)
    _mark("begin", name)
    try:
        yield
    finally:
        _mark("end", name)

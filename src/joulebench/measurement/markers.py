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

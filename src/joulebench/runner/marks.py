"""The worker's stage marks: kept for the manager's windows and appended to the stage file, if any.

The manager computes windows from the marks the worker sends back (exact instants, whatever the
monitor's polling of the stage file); the stage file lets a live monitor follow the stages as they
happen, in the line format of :mod:`joulebench.measurement.markers`.
"""

from __future__ import annotations

import time
from pathlib import Path

from joulebench.measurement.markers import append_stage_line


class RecordingMarks:
    """A :class:`~joulebench.measurement.markers.StageMarks` that records ``(name, start_s, end_s)``."""

    def __init__(self, stage_file: str | Path | None = None) -> None:
        self.stage_file = Path(stage_file) if stage_file else None
        self._open: dict[str, float] = {}
        self.spans: list[tuple[str, float, float]] = []

    def begin(self, name: str, t_s: float | None = None) -> None:
        t = time.monotonic() if t_s is None else t_s
        self._open[name] = t
        self._write("begin", name, t)

    def end(self, name: str, t_s: float | None = None) -> None:
        t = time.monotonic() if t_s is None else t_s
        start = self._open.pop(name, None)
        if start is not None:
            self.spans.append((name, start, t))
        self._write("end", name, t)

    def span(self, name: str, start_s: float, end_s: float) -> None:
        self.spans.append((name, start_s, end_s))
        self._write("begin", name, start_s)
        self._write("end", name, end_s)

    def first(self, name: str) -> tuple[float, float] | None:
        for n, s, e in self.spans:
            if n == name:
                return s, e
        return None

    def _write(self, verb: str, name: str, t_s: float) -> None:
        if self.stage_file is not None:
            append_stage_line(str(self.stage_file), verb, name, t_s)

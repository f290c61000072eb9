"""A power source that replays a trace file: the same windows, computed again from recorded readings.

    mon = Monitor.from_trace("run.jsonl.gz")
    mon.window("steady", 12.0, 42.0)

The recorded sources' metadata (counter periods, intervals, which are estimates) comes with the trace, so
flags and methods match the original measurement.
"""

from __future__ import annotations

import os
from pathlib import Path

from joulebench.measurement.records import Reading, SourceStatus
from joulebench.measurement.series import SourceMeta
from joulebench.measurement.source import PowerSource
from joulebench.measurement.trace import Trace, read_trace

NAME = "replay"


class ReplaySource(PowerSource):
    """Hands out a trace's readings (all of them on the first :meth:`read`)."""

    name = NAME

    def __init__(self, path: str | os.PathLike[str], trace: Trace | None = None) -> None:
        self.path = Path(path)
        self.trace = trace if trace is not None else read_trace(self.path)
        self._given = False

    def probe(self) -> SourceStatus:
        comps = tuple(dict.fromkeys(r.component for r in self.trace.readings))
        devices = tuple(dict.fromkeys(r.device for r in self.trace.readings))
        return SourceStatus(
            NAME,
            True,
            f"{len(self.trace.readings)} readings from {self.path.name}",
            components=comps,
            devices=devices,
        )

    def read(self) -> list[Reading]:
        if self._given:
            return []
        self._given = True
        return list(self.trace.readings)

    def source_metas(self) -> list[SourceMeta]:
        known = {m.name for m in self.trace.sources}
        # a hand-written trace may name sources without a header: treat them as plain power/counter sources
        extra = [
            SourceMeta(name=n, interval_s=0.0) for n in dict.fromkeys(r.source for r in self.trace.readings)
        ]
        return [*self.trace.sources, *(m for m in extra if m.name not in known)]

"""The measuring side of the stage-file protocol (docs/stage-protocol.md): follow a file that a child
process appends ``begin NAME [mono=T|unix=T]`` / ``end NAME [...]`` lines to, and pass the marks on."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from joulebench.measurement.markers import StageMarks

EVENTS = ("begin", "end")


@dataclass(frozen=True)
class StageLine:
    event: str  # "begin" | "end"
    name: str
    t_s: float | None  # monotonic seconds; None: stamp when read


def parse_stage_line(line: str) -> StageLine | None:
    """One protocol line; ``None`` for blank and ``#`` comment lines; ``ValueError`` when malformed."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split()
    if parts[0] not in EVENTS or len(parts) not in (2, 3):
        raise ValueError(f"expected 'begin|end NAME [mono=T|unix=T]', got {text!r}")
    t_s: float | None = None
    if len(parts) == 3:
        key, sep, value = parts[2].partition("=")
        if not sep or key not in ("mono", "unix"):
            raise ValueError(f"expected mono=T or unix=T, got {parts[2]!r}")
        stamp = float(value)
        # wall-clock to monotonic with the offset of this instant (the two clocks run at the same rate)
        t_s = stamp if key == "mono" else stamp - (time.time() - time.monotonic())
    return StageLine(parts[0], parts[1], t_s)


class StageFileFollower:
    """Reads new complete lines of ``path`` on each :meth:`poll` and sends them to ``marks``."""

    def __init__(self, path: str | os.PathLike[str], marks: StageMarks) -> None:
        self.path = os.fspath(path)
        self.marks = marks
        self.errors: list[str] = []
        self._offset = 0
        self._partial = b""
        # the sampler thread polls while Monitor.stop() polls one last time: never read a line twice
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Process what was appended since the last poll; returns the number of marks passed on."""
        with self._lock:
            return self._poll()

    def _poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        if not data:
            return 0
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")  # an unfinished last line waits for the next poll
        count = 0
        for raw in lines:
            try:
                parsed = parse_stage_line(raw.decode("utf-8", "replace"))
                if parsed is None:
                    continue
                t_s = parsed.t_s if parsed.t_s is not None else time.monotonic()
                (self.marks.begin if parsed.event == "begin" else self.marks.end)(parsed.name, t_s)
                count += 1
            except Exception as exc:  # a child's bad line must never stop the measurement
                self.errors.append(f"{self.path}: {exc}")
        return count

"""SIGTERM and SIGHUP stop long work as Ctrl-C does: what Slurm, systemd and `timeout` send to end a job,
and what a closed terminal or a dropped SSH session sends."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread: the workers are
    stopped, the run is marked interrupted and every finished trial is kept, as on Ctrl-C. (A hang-up
    killed the manager outright and left its engine worker generating on its own.)"""
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

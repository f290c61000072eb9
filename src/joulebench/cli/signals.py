"""SIGTERM and SIGHUP stop long work as Ctrl-C does: what Slurm, systemd and `timeout` send to end a job,
and what a closed terminal or a dropped SSH session sends. A time limit stops it the same way."""

from __future__ import annotations

import signal
import time
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


class TimeLimitReached(KeyboardInterrupt):
    """The time limit passed with a trial still running: stopped as on Ctrl-C, that trial lost."""


def _time_up(signum: int, frame: FrameType | None) -> None:
    raise TimeLimitReached


@contextmanager
def time_limit_as_interrupt(end_unix_s: float | None) -> Iterator[None]:
    """Inside the block, reaching ``end_unix_s`` raises :class:`TimeLimitReached` in the main thread (None:
    no limit). The work plans its trials to end before it; this is for one that runs over, so that the
    command ends when it was told to, as a booked machine or a batch job's wall time requires."""
    if end_unix_s is None:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _time_up)
    signal.setitimer(signal.ITIMER_REAL, max(end_unix_s - time.time(), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

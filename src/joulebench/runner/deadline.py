"""A time limit for long work (``joulebench sweep --time-limit``): a trial starts only if its expected
duration ends before the limit, so that a booked machine is handed back with every trial it began finished
and ``--resume`` runs the rest. A trial's expected duration is the longest of its kind that this run has
made so far; before any, the first guess the caller gives (the sweep's estimate from earlier trials). Each
sleep level is a kind of its own: a wake that reads the weights again is not timed by a park."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from joulebench.runner.config import RunConfig
from joulebench.store.rows import sleep_kind

SETUP = "setup"  # a setup trial, and an engine start before the repeats
GENERATE = "generate"  # a generation repeat, and a warm-up batch before them
PARK = "park"  # a park trial: the hold alone; a sleep trial (its calls and hold) is its level's sleep_kind


@dataclass(frozen=True)
class Guess:
    """First guesses of one cell's trials, in seconds. ``transition_s``: by sleep level, what an earlier
    sleep trial of the cell or its model took besides its hold (the sleep and wake calls); a level with
    none there is guessed at a whole setup trial, since a wake at worst loads the weights again."""

    setup_s: float
    generate_s: float
    transition_s: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Deadline:
    """``end_unix_s``: the wall-clock time by which every trial must have ended (wall clock, so that a
    Ray task on another node holds the same limit). ``guesses`` by sweep key; ``default`` for the rest."""

    end_unix_s: float
    default: Guess
    guesses: Mapping[str, Guess] = field(default_factory=dict)

    def left_s(self) -> float:
        return self.end_unix_s - _now()

    def guess(self, sweep_key: str | None) -> Guess:
        return self.guesses.get(sweep_key or "", self.default)


def opening_s(config: RunConfig, guess: Guess, *, started: bool = False, warm: bool = False) -> float:
    """The idle baseline and the first trial of a run of ``config``: a setup trial, or else a repeat with
    what it needs first: the engine start (none when ``started``) and the warm-up (none when ``warm``: the
    engine has just served this very batch shape)."""
    if config.setup_trials:
        first = guess.setup_s
    else:
        start = 0.0 if started else guess.setup_s
        first = start + (2 if config.warmup and not warm else 1) * guess.generate_s
    return config.idle_s + first


class Budget:
    """One run's view of a deadline: what its next trial is expected to take, and whether that fits."""

    def __init__(self, deadline: Deadline, sweep_key: str | None) -> None:
        self.deadline = deadline
        self.first = deadline.guess(sweep_key)
        self.longest: dict[str, float] = {}
        self.stopped: str | None = None  # why the run stopped, once it has

    def saw(self, kind: str, duration_s: float | None) -> None:
        """A trial of ``kind`` ended after ``duration_s``."""
        if duration_s is not None:
            self.longest[kind] = max(self.longest.get(kind, 0.0), duration_s)

    def expect_s(self, kind: str) -> float:
        """A setup trial (``SETUP``) or a repeat (``GENERATE``)."""
        if kind in self.longest:
            return self.longest[kind]
        return self.first.setup_s if kind == SETUP else self.first.generate_s

    def hold_expect_s(self, level: int | None, hold_s: float) -> float:
        """A park trial (``level`` None) or a sleep trial of ``level``, holding ``hold_s`` seconds."""
        kind = PARK if level is None else sleep_kind(level)
        if kind in self.longest:
            return self.longest[kind]
        if level is None:
            return hold_s
        return hold_s + self.first.transition_s.get(level, self.expect_s(SETUP))

    def allows(self, what: str, duration_s: float) -> bool:
        """Whether ``what`` (words for the message), expected to take ``duration_s``, ends before the limit.
        Once one step does not fit, nothing after it starts: a run stops in order, never skips ahead."""
        if self.stopped is not None:
            return False
        left = self.deadline.left_s()
        if duration_s <= left:
            return True
        self.stopped = (
            f"stopped at the time limit before {what} (expected {_seconds(duration_s)}, "
            f"{_seconds(max(left, 0.0))} left)"
        )
        return False


def _now() -> float:
    return time.time()


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"

"""What the results database says about a sweep's cells: finished, part done, or never run.

A cell is finished when its runs (those with its ``sweep_key``) together hold every trial it asks for, as
one run that ended ``ok`` does. A run that stopped part-way (a ``running`` row left by a killed sweep or a
machine taken back, a ``partial`` or ``failed`` one, one stopped at a time limit) keeps its good trials:
``--resume`` runs only the setup trials, repeats and park-and-sleep cycles still missing, as a run of its
own with the same key, and the report pools them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from joulebench.results.energy import ran_paused

if TYPE_CHECKING:
    from joulebench.runner.config import RunConfig
    from joulebench.store.db import ResultsDB


@dataclass(frozen=True)
class Tally:
    """Good trials of one cell over all its runs."""

    setup: int = 0
    repeats: int = 0  # measured generation repeats
    unmonitored: int = 0  # generation repeats run with the sampler paused
    runs: tuple[int, ...] = ()  # the runs that hold them
    parked: int = 0  # park trials
    asleep: Mapping[int, int] = field(default_factory=dict)  # sleep trials by sleep level

    def cycles(self, levels: list[int]) -> int:
        """Whole park-and-sleep cycles: a park and a sleep trial at each of ``levels``."""
        return min([self.parked, *(self.asleep.get(level, 0) for level in levels)])

    def describe(self, config: RunConfig) -> str:
        """What earlier runs did against what the cell asks: ``2 of 3 repeats done earlier (run 34)``."""
        cycles = "park-and-sleep cycles" if config.sleep_levels else "parks"
        wanted = (
            (self.repeats, config.repeats, "repeats"),
            (self.setup, config.setup_repeats, "setup trials"),
            (self.unmonitored, config.unmonitored_repeats, "unmonitored repeats"),
            (self.cycles(config.sleep_levels), config.lifecycle_cycles, cycles),
        )
        parts = [f"{min(done, want)} of {want} {what}" for done, want, what in wanted if want]
        runs = ", ".join(str(r) for r in self.runs)
        return f"{', '.join(parts)} done earlier (run{'s' if len(self.runs) > 1 else ''} {runs})"


def tally(db: ResultsDB, key: str, since_unix_s: float | None = None) -> Tally:
    """Good trials of the cell ``key`` in all its runs, or in those created from ``since_unix_s`` on."""
    setup = repeats = unmonitored = parked = 0
    asleep: dict[int, int] = {}
    runs: list[int] = []
    for run in db.runs(sweep_key=key):
        if since_unix_s is not None and run["created_unix_s"] < since_unix_s:
            continue
        good = [t for t in db.trials(run["id"]) if t["status"] == "ok"]
        n_setup = sum(t["kind"] == "setup" for t in good)
        generation = [t for t in good if t["kind"] == "generation"]
        n_paused = sum(ran_paused(run["config"] or {}, t["details"] or {}) for t in generation)
        held = [t for t in good if t["kind"] in ("park", "sleep")]
        if n_setup or generation or held:
            runs.append(int(run["id"]))
        setup += n_setup
        unmonitored += n_paused
        repeats += len(generation) - n_paused
        for trial in held:
            level = (trial["details"] or {}).get("level")
            if trial["kind"] == "park":
                parked += 1
            elif level is not None:
                asleep[int(level)] = asleep.get(int(level), 0) + 1
    return Tally(setup, repeats, unmonitored, tuple(runs), parked, asleep)


def remainder(config: RunConfig, done: Tally) -> RunConfig | None:
    """``config`` cut to the trials ``done`` lacks; ``None`` when it lacks none. Generation repeats left
    over from an earlier run count towards the cell, so a continuation may measure setup trials only."""
    # with setup factors, setup_repeats is per combination of their levels: the grid is run again whole,
    # as many times as it still lacks
    combinations = math.prod(len(levels) for levels in config.setup_factors.values())
    rest = replace(
        config,
        setup_repeats=max(0, config.setup_repeats - done.setup // max(combinations, 1)),
        repeats=max(0, config.repeats - done.repeats),
        unmonitored_repeats=max(0, config.unmonitored_repeats - done.unmonitored),
        # whole cycles, so a cycle cut after its park parks again: every level ends with as many as asked
        lifecycle_repeats=max(0, config.lifecycle_cycles - done.cycles(config.sleep_levels)),
    )
    if rest.setup_repeats == rest.repeats == rest.unmonitored_repeats == rest.lifecycle_repeats == 0:
        return None
    if rest.repeats == 0 and (rest.unmonitored_repeats or rest.lifecycle_repeats):
        # paused repeats are only meaningful beside measured ones of the same engine start, and an engine
        # is parked or put to sleep as the run it completes left it: warm from serving the batch
        rest = replace(rest, repeats=1)
    return rest

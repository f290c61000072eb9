"""`--dry-run --time-limit`: the runner's rule played out on the estimates, trial by trial (sweep/fit.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from joulebench.runner.config import RunConfig
from joulebench.sweep.cells import Cell, Group
from joulebench.sweep.estimate import TrialTimes, cell_estimate, steps
from joulebench.sweep.fit import IN_PART, LATER, WHOLE, within_limit

TIMES = TrialTimes(setup_s=90.0, generate_s=20.0, source="default")
TIMED = TrialTimes(setup_s=90.0, generate_s=20.0, source="history", transition_s={1: 5.0})


def _config(**kw: object) -> RunConfig:
    base: dict[str, object] = {"workload": "standard", "repeats": 2, "setup_repeats": 2, "idle_s": 10.0}
    return RunConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "times", "engine_start", "total_s"),
    [
        # idle 10, two setup trials of 90, the engine start, warm-up and first repeat 90 + 20 + 20, a repeat
        (_config(), TIMES, True, 10 + 180 + 130 + 20),
        (_config(), TIMES, False, 10 + 180 + 40 + 20),  # the group's engine already started
        # a warm-up cut to 100 of 500 tokens takes a fifth of a repeat; two paused repeats are repeats too
        (_config(setup_repeats=0, warmup_tokens=100), TIMES, True, 10 + 90 + 24 + 20),
        (_config(unmonitored_repeats=2, warmup=False), TIMES, False, 10 + 180 + 4 * 20),
        # two cycles of a park (60), level 1 (60 + its 5 s of calls) and level 2 (60, calls not timed)
        (_config(park_s=60.0, sleep_levels=[1, 2]), TIMED, True, 10 + 180 + 130 + 20 + 2 * 185),
        # setup trials alone: no engine start and no warm-up, since no repeat needs them
        (_config(repeats=0), TIMES, True, 10 + 180),
    ],
)
def test_a_cells_estimate_is_its_trials_by_hand(
    config: RunConfig, times: TrialTimes, engine_start: bool, total_s: float
) -> None:
    assert sum(step.duration_s for step in steps(config, times, engine_start)) == pytest.approx(total_s)
    assert cell_estimate(times, config, engine_start).duration_s == pytest.approx(total_s)


def test_a_first_sleep_no_earlier_sleep_timed_is_expected_to_cost_a_whole_setup() -> None:
    config = _config(setup_repeats=0, repeats=2, park_s=60.0, sleep_levels=[1, 2])
    # two repeats (the first with the engine start and warm-up), then two cycles of park, level 1, level 2
    expected = [(s.duration_s, s.expect_s) for s in steps(config, TIMED, engine_start=True)]
    assert expected == [
        (10.0 + 90.0 + 20.0 + 20.0, 140.0),
        (20.0, 20.0),
        (60.0, 60.0),
        (65.0, 65.0),  # level 1: earlier sleeps timed its calls at 5 s
        (60.0, 150.0),  # level 2: nothing timed it; a whole setup is expected, the first time only
        (60.0, 60.0),
        (65.0, 65.0),
        (60.0, 60.0),
    ]


def _cell(key: str, config: RunConfig) -> Cell:
    return Cell(replace(config, sweep_key=key), engine=None, workload=None)  # type: ignore[arg-type]


def test_cells_are_run_whole_begun_or_left_as_the_sweep_would() -> None:
    """Limit 390 s. The first engine start: its first cell (idle 10 s, 2 setup trials of 90 s, then the
    engine start, warm-up and first repeat, 90 + 20 + 20 s, and the second repeat, 20 s: 340 s) fits
    whole; its second (warm-up and first repeat 40 s, second repeat 20 s) fits its first 40 s, not the
    rest: begun, and stopped with 10 s left. The second engine start's first cell needs 100 s for its idle
    baseline and first setup trial, so neither it nor its engine start's other cell is begun."""
    first = _config()
    second = _config(setup_repeats=0, idle_s=0.0)
    groups = [
        Group("a", (_cell("a1", first), _cell("a2", second))),
        Group("b", (_cell("b1", first), _cell("b2", second))),
    ]
    times = dict.fromkeys(("a1", "a2", "b1", "b2"), TIMES)
    fit = within_limit(groups, times, {"a1", "b1"}, 390.0)
    assert dict(fit.states) == {"a1": WHOLE, "a2": IN_PART, "b1": LATER, "b2": LATER}
    assert fit.used_s == pytest.approx(380.0)


def test_a_warm_up_cut_short_takes_its_share_but_is_expected_whole_as_the_runner_does() -> None:
    config = _config(setup_repeats=0, repeats=1, idle_s=0.0, warmup_tokens=100)  # 100 of 500 tokens
    (first,) = steps(config, TIMES, engine_start=True)
    assert (first.duration_s, first.expect_s) == (90.0 + 20.0 * 1.2, 90.0 + 2 * 20.0)
    (warm,) = steps(config, TIMES, engine_start=False)  # the engine of the group's previous cell
    assert (warm.duration_s, warm.expect_s) == (20.0 * 1.2, 2 * 20.0)

from __future__ import annotations

from joulebench.runner.config import RunConfig
from joulebench.sweep.estimate import TrialTimes, cell_estimate

TIMES = TrialTimes(setup_s=30.0, generate_s=100.0, source="default")


def test_a_warm_up_cut_short_counts_its_share_of_a_repeat() -> None:
    full = RunConfig(workload="high-throughput", repeats=3, setup_repeats=0, idle_s=0.0)
    cut = RunConfig(workload="high-throughput", repeats=3, setup_repeats=0, idle_s=0.0, warmup_tokens=200)
    longer = RunConfig(workload="standard", output_tokens=100, repeats=3, setup_repeats=0, idle_s=0.0,
                       warmup_tokens=500)  # fmt: skip
    assert cell_estimate(TIMES, full, engine_start=False).duration_s == 400.0
    assert cell_estimate(TIMES, cut, engine_start=False).duration_s == 310.0  # 200 of 2,000 tokens
    assert cell_estimate(TIMES, longer, engine_start=False).duration_s == 400.0  # never more than one


def test_repeats_alternate_measured_and_paused_from_a_measured_one() -> None:
    from joulebench.runner.run import repeat_plan

    assert repeat_plan(3, 0) == [True, True, True]
    assert repeat_plan(3, 2) == [True, False, True, False, True]
    assert repeat_plan(1, 3) == [True, False, False, False]
    paused = RunConfig(repeats=3, unmonitored_repeats=2, setup_repeats=0, idle_s=0.0, warmup=False)
    assert cell_estimate(TIMES, paused, engine_start=False).duration_s == 500.0  # 5 repeats of 100 s

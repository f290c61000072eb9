from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from joulebench.runner.config import RunConfig
from joulebench.store.db import ResultsDB
from joulebench.store.rows import TrialRow
from joulebench.sweep.estimate import TrialTimes, cell_estimate, trial_times

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


def _run(
    db: ResultsDB,
    model: str,
    shape: tuple[str, int, int],
    trials: list[tuple[str, float, int | None]],
    key: str | None = None,
    label: str | None = None,
) -> None:
    """A run of ``shape`` (workload, batch, output tokens) with ``trials`` (kind, duration s, tokens)."""
    workload, batch, out = shape
    run = db.create_run(
        engine="transformers", model=model, workload=workload, batch_size=batch, output_tokens=out,
        length_mode="fixed", device="cuda", config={"label": label}, environment={}, sweep_key=key,
    )  # fmt: skip
    for k, (kind, duration_s, tokens) in enumerate(trials):
        db.add_trial(run, TrialRow(kind, k, "ok", 1.7e9, duration_s=duration_s, output_tokens=tokens))
    db.add_trial(run, TrialRow("generation", 9, "failed", 1.7e9, duration_s=1.0))  # never timed by


HT = ("high-throughput", 256, 2000)
HC = ("high-concurrency", 256, 500)


def _config(model: str, workload: str, key: str | None = None, label: str | None = None) -> RunConfig:
    return RunConfig(engine="transformers", model=model, workload=workload, device="cuda", sweep_key=key,
                     label=label)  # fmt: skip


def test_a_cell_continued_elsewhere_is_timed_by_its_own_trials(tmp_path: Path) -> None:
    # The earlier part ran from another folder: the model path differs, the cell's sweep key does not.
    with ResultsDB(tmp_path / "r.db") as db:
        _run(db, "/elsewhere/m", HT, [("setup", 15.0, 1), ("generation", 365.0, 512000)] * 2, key="k1")
        times = trial_times(db, _config("/here/m", "high-throughput", key="k1"))
    assert (times.setup_s, times.generate_s, times.source) == (15.0, 365.0, "history")


def test_a_cell_cut_off_in_its_first_repeat_is_timed_by_its_warm_up(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        _run(db, "m", HT, [("warmup", 510.0, 512000)], key="k1")
        _run(db, "m", HC, [("generation", 40.0, 128000)])  # another shape: scaling would say 160 s
        times = trial_times(db, _config("m", "high-throughput", key="k1"))
    assert (times.generate_s, times.source) == (510.0, "history")


def test_a_new_shape_is_timed_per_token_from_the_model_s_other_shapes(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        _run(db, "m", HC, [("setup", 16.0, 1), ("generation", 40.0, 128000), ("generation", 44.0, 128000)])
        times = trial_times(db, _config("m", "high-throughput"))
    # median of 40 and 44 s per 128,000 tokens, times 256 x 2,000 tokens; setup from any workload
    assert (times.setup_s, times.generate_s, times.source) == (16.0, 168.0, "scaled")


def test_the_same_shape_is_preferred_to_scaling_and_variants_do_not_time_each_other(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        _run(db, "m", HC, [("generation", 40.0, 128000)])
        _run(db, "m", HT, [("generation", 300.0, 512000)])
        _run(db, "m", HT, [("setup", 25.0, 1), ("generation", 120.0, 512000)], label="compiled")
        eager = trial_times(db, _config("m", "high-throughput"))
        compiled = trial_times(db, _config("m", "high-throughput", label="compiled"))
        unknown = trial_times(db, _config("other", "high-throughput"))
    assert (eager.setup_s, eager.generate_s, eager.source) == (30.0, 300.0, "history")  # default setup
    assert (compiled.setup_s, compiled.generate_s, compiled.source) == (25.0, 120.0, "history")
    # nothing known of this model: on a GPU its 512,000 tokens at the default rate of 1,000 tokens/s
    assert (unknown.setup_s, unknown.generate_s, unknown.source) == (30.0, 512.0, "default")


def test_defaults_time_a_gpu_repeat_by_its_tokens_and_a_cpu_repeat_flat() -> None:
    def default(engine: str, workload: str, device: str = "cuda") -> float:
        config = RunConfig(engine=engine, model="m", workload=workload, device=device)
        times = trial_times(None, config)
        assert times.source == "default"
        return times.generate_s

    assert default("vllm", "high-throughput") == 51.2  # 512,000 tokens at 10,000 tokens/s
    assert default("deepspeed", "high-concurrency") == 128.0  # 128,000 tokens at 1,000 tokens/s
    assert default("vllm", "standard") == 20.0  # 64,000 tokens: 6.4 s, held at the 20 s floor
    assert default("transformers", "high-throughput", device="cpu") == 20.0


def _sleeps(db: ResultsDB, model: str, key: str | None, calls: list[tuple[int, float, float, str]]) -> None:
    """A run of the standard shape whose sleep trials are (level, sleep call s, wake call s, status)."""
    run = db.create_run(
        engine="transformers", model=model, workload="standard", batch_size=128, output_tokens=500,
        length_mode="fixed", device="cuda", config={"label": None}, environment={}, sweep_key=key,
    )  # fmt: skip
    for k, (level, asleep, woken, status) in enumerate(calls):
        latency = {"sleep_enter": asleep, "sleep": 60.0, "wake": woken}
        details = {"hold_s": 60.0, "level": level, "latency_s": latency}
        trial = TrialRow("sleep", k, status, 1.7e9, duration_s=60.0 + asleep + woken, details=details)
        db.add_trial(run, trial)


def test_a_sleep_level_is_timed_by_the_calls_of_earlier_sleeps_of_the_cell_else_its_model(
    tmp_path: Path,
) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        _sleeps(db, "m", "k1", [(1, 1.0, 2.0, "ok"), (1, 1.0, 4.0, "ok"), (2, 1.0, 30.0, "failed")])
        # the model at another shape: its wake does not depend on the workload
        _sleeps(db, "m", None, [(1, 9.0, 9.0, "ok"), (2, 2.0, 10.0, "ok"), (2, 2.0, 14.0, "ok")])
        config = replace(_config("m", "standard", key="k1"), sleep_levels=[1, 2], park_s=60.0)
        times = trial_times(db, config)
        fresh = trial_times(db, replace(config, model="other", sweep_key=None))
    # level 1 from the cell's own two (median of 3 and 5 s); level 2 from the model's, the failed one not
    assert dict(times.transition_s) == {1: 4.0, 2: 14.0}
    assert dict(fresh.transition_s) == {}
    one = replace(config, repeats=0, setup_repeats=0, idle_s=0.0, warmup=False, lifecycle_repeats=2)
    # two cycles, each a park and two sleeps of 60 s, and the calls: 2 x (180 + 4 + 14)
    assert cell_estimate(times, one, engine_start=False).duration_s == 396.0
    assert cell_estimate(fresh, one, engine_start=False).duration_s == 360.0


def test_the_time_left_is_the_rest_at_the_pace_the_finished_cells_kept() -> None:
    from joulebench.sweep.estimate import pace_left_s

    estimate_s = {"a": 100.0, "b": 60.0, "c": 300.0, "d": 40.0}
    # a and b were estimated at 160 s and took 80 s: c and d, 340 s by their estimates, take about 170 s
    assert pace_left_s(estimate_s, ["a", "b"], ["c", "d"], 80.0) == pytest.approx(170.0)
    assert pace_left_s(estimate_s, [], ["a"], 5.0) is None  # nothing finished: no pace yet
    assert pace_left_s(estimate_s, ["a"], [], 50.0) == 0.0

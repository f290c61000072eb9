"""--resume continues a cell that an earlier run did in part: only the missing trials run, in a run of
their own with the cell's key, and the report pools them. The first sweep's last repeat fails in the real
Transformers worker (an injected fault), as a machine taken back mid-cell would leave it."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from joulebench.errors import UsageError
from joulebench.runner.config import RunConfig
from joulebench.runner.prepare import check_config
from joulebench.runner.worker import FAULT_ENV
from joulebench.sweep.cells import expand
from joulebench.sweep.plan import load_plan
from joulebench.sweep.state import Tally, remainder
from tests.sweep.conftest import WORKLOADS, Cli, cells_in, cpu_plan, joulebench


def test_the_remainder_is_what_earlier_runs_lack() -> None:
    cell = RunConfig(repeats=3, setup_repeats=5, unmonitored_repeats=2)
    rest = remainder(cell, Tally(setup=5, repeats=2, unmonitored=2, runs=(7,)))
    assert rest is not None and (rest.setup_repeats, rest.repeats, rest.unmonitored_repeats) == (0, 1, 0)
    rest = remainder(cell, Tally(setup=3, repeats=3, unmonitored=2, runs=(7,)))
    assert rest is not None and (rest.setup_repeats, rest.repeats) == (2, 0)  # setup trials only
    # paused repeats need a measured one beside them in the same engine start
    rest = remainder(cell, Tally(setup=5, repeats=3, unmonitored=1, runs=(7,)))
    assert rest is not None and (rest.repeats, rest.unmonitored_repeats) == (1, 1)
    assert remainder(cell, Tally(setup=6, repeats=4, unmonitored=2, runs=(7, 8))) is None


def test_the_sweep_key_and_the_rest_of_the_config_stay() -> None:
    cell = RunConfig(repeats=3, setup_repeats=1, sweep_key="abc", label="eager", workload="standard")
    rest = remainder(cell, Tally(setup=1, repeats=1, runs=(1,)))
    assert rest is not None and (rest.sweep_key, rest.label, rest.workload) == ("abc", "eager", "standard")
    assert Tally(1, 2, 0, (1,)).describe(cell) == "2 of 3 repeats, 1 of 1 setup trials done earlier (run 1)"
    assert Tally(1, 2, 0, (1, 4)).describe(cell).endswith("done earlier (runs 1, 4)")


def test_park_and_sleep_cycles_a_run_did_not_reach_are_what_it_lacks() -> None:
    """Parking and sleeping come after the repeats: a run stopped among them (a time limit, a machine taken
    back) has every repeat and not every cycle, and its cell is not finished."""
    cell = RunConfig(repeats=3, setup_repeats=1, park_s=5.0, sleep_levels=[1, 2])
    # the third cycle cut after its park and its level-1 sleep
    done = Tally(setup=1, repeats=3, runs=(7,), parked=3, asleep={1: 3, 2: 2})
    assert done.describe(cell) == (
        "3 of 3 repeats, 1 of 1 setup trials, 2 of 3 park-and-sleep cycles done earlier (run 7)"
    )
    rest = remainder(cell, done)
    # a whole cycle again, in an engine one repeat has warmed as the repeats warmed the run's own
    assert rest is not None and (rest.setup_repeats, rest.repeats, rest.lifecycle_cycles) == (0, 1, 1)
    assert remainder(cell, replace(done, asleep={1: 3, 2: 3})) is None
    # repeats still to run: the cycles follow them, no repeat added
    rest = remainder(cell, Tally(setup=1, repeats=1, runs=(7,)))
    assert rest is not None and (rest.repeats, rest.lifecycle_cycles) == (2, 3)
    # every cycle done, setup trials missing: a run of setup trials alone, which the runner accepts
    rest = remainder(cell, Tally(repeats=3, runs=(7,), parked=3, asleep={1: 3, 2: 3}))
    assert rest is not None and (rest.setup_repeats, rest.repeats, rest.lifecycle_cycles) == (1, 0, 0)
    check_config(rest)
    # a plan that asks fewer cycles than repeats (defaults: lifecycle_repeats) is owed only those
    fewer = replace(cell, lifecycle_repeats=1)
    rest = remainder(fewer, Tally(setup=1, repeats=3, runs=(7,)))
    assert rest is not None and (rest.repeats, rest.lifecycle_cycles) == (1, 1)
    assert remainder(fewer, Tally(setup=1, repeats=3, runs=(7,), parked=1, asleep={1: 1, 2: 1})) is None
    with pytest.raises(UsageError, match="--repeats >= 1"):
        check_config(replace(cell, repeats=0))  # a user's run that parks without repeats is still refused


def _sweep_failing_repeat_2(tmp_path: Path, tiny_llama: Path, max_retries: int) -> tuple[Path, Path, Cli]:
    """A sweep of two cells (1 setup trial, 3 repeats each) whose every run fails at repeat index 2, in the
    real Transformers worker (an injected fault), as a machine taken back mid-cell would leave it."""
    plan = cpu_plan(tmp_path, tiny_llama, repeats=3, setup_repeats=1)
    db = tmp_path / "r.db"
    fault = {FAULT_ENV: "repeat-2:raise"}
    result = joulebench("sweep", str(plan), "--db", str(db), "--max-retries", str(max_retries), env=fault)
    return plan, db, result


@pytest.mark.slow  # real engine workers
def test_resume_runs_only_the_missing_repeats_and_the_report_pools_them(
    tmp_path: Path, tiny_llama: Path
) -> None:
    plan, db, first = _sweep_failing_repeat_2(tmp_path, tiny_llama, max_retries=0)
    assert first.rc == 1, first.err  # both cells lost their last repeat
    keys = [c.key for c in expand(load_plan(plan), gpus=0)]
    cut = cells_in(db)
    assert [r["status"] for k in keys for r in cut[k]] == ["partial", "partial"]

    dry = joulebench("sweep", str(plan), "--dry-run", "--resume", "--db", str(db))
    assert dry.rc == 0, dry.err
    lines = dry.out.strip().splitlines()
    rows = [line.split() for line in lines[1:3]]
    # setup, repeats and state columns: the first cell had its setup trial, each lacks one repeat
    assert [(r[5], r[6], r[-1]) for r in rows] == [("0", "1", "resume"), ("0", "1", "resume")]
    assert any("2 of 3 repeats, 1 of 1 setup trials done earlier (run 1)" in line for line in lines)
    assert lines[-1].startswith("2 cells (2 to run) in 1 engine start(s): 0 setup trial(s), 2 generation")

    resumed = joulebench("sweep", str(plan), "--resume", "--db", str(db))
    assert resumed.rc == 0, resumed.err
    out = resumed.out.splitlines()
    assert sum(line.startswith("resume  ") for line in out) == 2
    assert sum(line.startswith("start   ") for line in out) == 1  # the two rests share one engine start
    assert "2 ok, 0 failed, 0 skipped" in out[-1]
    cells = cells_in(db)
    for key, batch in zip(keys, [w["batch_size"] for w in WORKLOADS], strict=True):
        earlier, rest = cells[key]
        assert rest["status"] == "ok" and rest["config"]["sweep_key"] == key
        assert (rest["config"]["repeats"], rest["config"]["setup_repeats"]) == (1, 0)
        assert [(t["kind"], t["status"]) for t in rest["trials"]] == [("warmup", "ok"), ("generation", "ok")]
        trials = earlier["trials"] + rest["trials"]
        good = [t for t in trials if t["kind"] == "generation" and t["status"] == "ok"]
        assert len(good) == 3 and all(len(t["request_tokens"]) == batch for t in good)

    again = joulebench("sweep", str(plan), "--dry-run", "--resume", "--db", str(db))
    assert [line.split()[-1] for line in again.out.strip().splitlines()[1:3]] == ["done", "done"]

    report = joulebench("report", "--db", str(db), "--out", str(tmp_path / "report"))
    assert report.rc == 0, report.err
    with open(tmp_path / "report" / "summary.csv") as f:
        n = {
            (r["batch_size"], r["max_output_tokens"]): r["n"]
            for r in csv.DictReader(f)
            if r["kind"] == "generation" and r["stage"] == "generate" and r["metric"] == "tokens_per_s"
        }
    assert {(int(float(b)), int(float(t))): int(v) for (b, t), v in n.items()} == {
        (w["batch_size"], w["output_tokens"]): 3 for w in WORKLOADS
    }


@pytest.mark.slow  # real engine workers
def test_a_retry_within_a_sweep_runs_only_what_the_cut_attempt_lacks(
    tmp_path: Path, tiny_llama: Path
) -> None:
    # Every attempt's third repeat (index 2) fails; the retry needs one repeat, index 0, so it succeeds.
    plan, db, result = _sweep_failing_repeat_2(tmp_path, tiny_llama, max_retries=1)
    assert result.rc == 0, result.err
    assert "2 ok, 0 failed, 0 skipped" in result.out.splitlines()[-1]
    cells = cells_in(db)
    for key in [c.key for c in expand(load_plan(plan), gpus=0)]:
        cut, retry = cells[key]
        assert cut["status"] == "partial"
        assert (retry["status"], retry["config"]["repeats"], retry["config"]["setup_repeats"]) == ("ok", 1, 0)
        trials = cut["trials"] + retry["trials"]
        good = [t for t in trials if t["kind"] == "generation" and t["status"] == "ok"]
        assert len(good) == 3  # not 2 + 3: the retry did not measure the cell over again


@pytest.mark.slow  # real engine workers
def test_a_cell_whose_wake_failed_is_not_done_and_resume_makes_its_cycle(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """The wake call fails in the real Transformers worker (an injected fault): the cell has its repeat but
    not its park-and-sleep cycle, so the sweep reports it failed, not ok, and --resume makes the cycle."""
    engine = {"name": "transformers", "park_s": 0.5, "sleep_levels": [2]}
    plan = cpu_plan(
        tmp_path, tiny_llama, repeats=1, setup_repeats=0, engines=[engine], workloads=WORKLOADS[:1]
    )
    db = tmp_path / "r.db"
    first = joulebench(
        "sweep", str(plan), "--db", str(db), "--max-retries", "0", env={FAULT_ENV: "wake:raise"}
    )
    assert first.rc == 1, first.out + first.err
    ((key, (run,)),) = cells_in(db).items()
    kinds = [(t["kind"], t["status"]) for t in run["trials"] if t["kind"] != "warmup"]
    assert kinds == [("generation", "ok"), ("park", "ok"), ("sleep", "failed")]
    assert any(
        line.startswith("failed ") and "injected fault at wake" in line for line in first.out.splitlines()
    )

    resumed = joulebench("sweep", str(plan), "--db", str(db), "--resume")
    assert resumed.rc == 0, resumed.err
    assert f"1 of 1 repeats, 0 of 1 park-and-sleep cycles done earlier (run {run['id']})" in resumed.out
    rest = cells_in(db)[key][-1]
    kinds = [(t["kind"], t["status"]) for t in rest["trials"] if t["kind"] != "warmup"]
    assert rest["status"] == "ok" and kinds == [("generation", "ok"), ("park", "ok"), ("sleep", "ok")]

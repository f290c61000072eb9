"""`joulebench sweep --time-limit`: no trial starts that its estimate ends past the limit, a trial still
running at the limit is stopped, and `--resume` runs exactly what was left. Through the real runner and the
real Transformers engine on CPU."""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from joulebench.cli.sweep import parse_duration_s
from joulebench.errors import UsageError
from joulebench.runner import deadline as deadline_module
from joulebench.runner.config import RunConfig
from joulebench.runner.deadline import Budget, Deadline, Guess, opening_s
from joulebench.runner.worker import FAULT_ENV
from joulebench.store.db import ResultsDB
from joulebench.sweep.cells import expand
from joulebench.sweep.estimate import trial_times
from joulebench.sweep.plan import load_plan
from tests.sweep.conftest import WORKLOADS, cells_in, cpu_plan, joulebench


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("25m", 1500.0), ("1h30m", 5400.0), ("1.5h", 5400.0), (" 2m5s ", 125.0)],
)
def test_a_duration_is_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration_s(text, "--time-limit") == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "m", "-5m", "0", "0s", "1m h", "5 m", "1h30"])
def test_anything_else_is_one_line_of_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_duration_s(text, "--time-limit")
    assert "--time-limit" in str(error.value) and "\n" not in str(error.value)


def test_the_cli_refuses_a_bad_limit_before_anything_runs(tmp_path: Path, tiny_llama: Path) -> None:
    plan = cpu_plan(tmp_path, tiny_llama)
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"), "--time-limit", "soon")
    assert result.rc == 2
    assert result.err.strip().splitlines() == [
        "joulebench: error: --time-limit takes a duration such as 90s, 25m or 1h30m, not 'soon'"
    ]
    assert not (tmp_path / "r.db").exists()


def test_a_step_fits_until_one_does_not_and_then_nothing_does(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(deadline_module, "_now", lambda: now[0])
    budget = Budget(Deadline(1100.0, default=Guess(setup_s=30.0, generate_s=20.0)), "some-key")
    assert budget.expect_s("setup") == 30.0 and budget.expect_s("generate") == 20.0
    budget.saw("generate", 45.0)
    budget.saw("generate", 12.0)
    assert budget.expect_s("generate") == 45.0  # the longest seen, not the first guess or the last
    assert budget.allows("repeat 1 of 3", 100.0)  # exactly at the limit still fits
    now[0] = 1060.0
    assert not budget.allows("repeat 2 of 3", 45.0)
    assert budget.stopped == "stopped at the time limit before repeat 2 of 3 (expected 45 s, 40 s left)"
    assert not budget.allows("repeat 3 of 3", 1.0)  # a run stops in order: no skipping ahead
    assert budget.stopped.startswith("stopped at the time limit before repeat 2 of 3")


def test_a_sleep_is_not_timed_by_a_park_since_its_wake_may_load_the_weights_again() -> None:
    guess = Guess(setup_s=30.0, generate_s=20.0, transition_s={1: 4.0})
    budget = Budget(Deadline(1e12, default=guess), None)
    assert budget.hold_expect_s(None, 60.0) == 60.0  # a park before any: its hold
    assert budget.hold_expect_s(1, 60.0) == 64.0  # the sleep and wake calls an earlier sleep took
    assert budget.hold_expect_s(2, 60.0) == 90.0  # none of level 2 yet: a whole setup trial's worth
    budget.saw("setup", 45.0)
    assert budget.hold_expect_s(2, 60.0) == 105.0  # the longest setup trial this run made
    budget.saw("park", 61.0)
    budget.saw("sleep-2", 75.0)
    assert budget.hold_expect_s(None, 60.0) == 61.0
    assert budget.hold_expect_s(2, 60.0) == 75.0  # once one ran, the longest of its level
    assert budget.hold_expect_s(1, 60.0) == 64.0  # another level's is not its own


def test_a_deadline_with_its_guesses_travels_to_another_process() -> None:
    """A Ray task gets it pickled: every guess, the sleep calls' times too, must come through whole."""
    import pickle

    guess = Guess(setup_s=30.0, generate_s=20.0, transition_s={2: 7.5})
    deadline = Deadline(1e9, default=guess, guesses={"k": Guess(1.0, 2.0)})
    assert pickle.loads(pickle.dumps(deadline)) == deadline


def test_a_runs_opening_is_its_idle_baseline_and_first_trial() -> None:
    guess = Guess(setup_s=30.0, generate_s=20.0)
    assert opening_s(RunConfig(idle_s=5.0, setup_repeats=2), guess) == 35.0
    # no setup trial: an engine start, a warm-up and the first repeat
    assert opening_s(RunConfig(idle_s=5.0, setup_repeats=0), guess) == 75.0
    assert opening_s(RunConfig(idle_s=0.0, setup_repeats=0, warmup=False), guess) == 50.0
    assert opening_s(RunConfig(idle_s=0.0, setup_repeats=0), guess, started=True, warm=True) == 20.0
    # the engine of the group's previous cell: started, and warmed for another batch shape than this one
    assert opening_s(RunConfig(idle_s=0.0, setup_repeats=0), guess, started=True) == 40.0


slow = pytest.mark.slow  # real engine workers


@slow
def test_a_run_stops_before_the_repeat_the_time_left_cannot_hold(
    tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock jumps as the first repeat ends, as if it had taken most of a booking: the run keeps that
    repeat, stops before the second, ends interrupted with the reason, and the group's next run is not
    begun. The deadline's clock is the only thing replaced; engine, trials and database are real."""
    from joulebench.runner.run import execute_many

    jump = [0.0]
    monkeypatch.setattr(deadline_module, "_now", lambda: time.time() + jump[0])
    end = time.time() + 600

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "trial" and event["kind"] == "generation" and event["index"] == 0:
            jump[0] = 600 - 0.001  # a thousandth of a second left: no repeat fits in it
        events.append(event)

    events: list[dict[str, Any]] = []
    first = RunConfig(engine="transformers", model=str(tiny_llama), device="cpu", idle_s=0.0, repeats=3,
                      setup_repeats=1, workload="smoke", batch_size=2, output_tokens=4, length_mode="fixed",
                      sweep_key="k1")  # fmt: skip
    configs = [first, replace(first, batch_size=3, output_tokens=6, sweep_key="k2")]
    guess = Guess(setup_s=60.0, generate_s=20.0)
    results = execute_many(configs, tmp_path / "r.db", progress=progress, deadline=Deadline(end, guess))

    assert [r.status for r in results] == ["interrupted"]  # the second run was not begun
    with ResultsDB(tmp_path / "r.db") as db:
        (run,) = db.runs()
        kinds = [(t["kind"], t["repeat_index"], t["status"]) for t in db.trials(run["id"])]
    assert kinds == [("setup", 0, "ok"), ("warmup", 0, "ok"), ("generation", 0, "ok")]
    reason = run["environment"]["time_limit"]
    assert reason.startswith("stopped at the time limit before repeat 2 of 3 (expected ")
    assert reason.endswith(" s left)")
    assert [e["message"] for e in events if e["event"] == "time_limit"] == [reason]


@slow
def test_a_sweep_ends_at_its_limit_and_resume_runs_what_was_left(tmp_path: Path, tiny_llama: Path) -> None:
    """With an empty database the first guesses are the defaults (a Transformers setup 30 s, a CPU repeat
    20 s): 45 s hold the setup trial but not the engine start, warm-up and repeat after it. The dry run
    says so beforehand: the first cell begun and stopped, the second of its engine start not begun."""
    plan = cpu_plan(tmp_path, tiny_llama, repeats=3, setup_repeats=1)
    db = tmp_path / "r.db"
    dry = joulebench("sweep", str(plan), "--db", str(db), "--dry-run", "--time-limit", "45s")
    assert dry.rc == 0, dry.err
    assert [row.split()[-1] for row in dry.out.splitlines()[1:3]] == ["partial", "later"]
    assert dry.out.splitlines()[-1] == (
        "--time-limit 45s: 0 of 2 cells fit, 1 begun and stopped at the limit (about 30s); 2 left for a "
        "later --resume (marked partial, later)"
    )

    began = time.monotonic()
    limited = joulebench("sweep", str(plan), "--db", str(db), "--time-limit", "45s")
    took_s = time.monotonic() - began
    assert limited.rc == 3, limited.err
    assert took_s < 45
    first, second = (c.key for c in expand(load_plan(plan), gpus=0))
    cells = cells_in(db)
    (run,) = cells[first]
    assert run["status"] == "interrupted"
    assert [(t["kind"], t["status"]) for t in run["trials"]] == [("setup", "ok")]
    assert run["environment"]["time_limit"].startswith("stopped at the time limit before repeat 1 of 3")
    assert second not in cells  # not begun: no run, no engine start
    lines = limited.out.splitlines()
    assert any(
        line.startswith("later ") and first in line and "before repeat 1 of 3" in line for line in lines
    )
    assert any(line.startswith("later ") and second in line and "not begun" in line for line in lines)
    assert "0 ok, 0 failed, 0 skipped (finished earlier), 2 left at the time limit" in lines[-1]

    resumed = joulebench("sweep", str(plan), "--db", str(db), "--resume")
    assert resumed.rc == 0, resumed.err
    assert any(line.startswith("resume ") and first in line for line in resumed.out.splitlines())
    cells = cells_in(db)
    rest = cells[first][-1]  # the setup trial is not made again: only the three repeats
    assert [t["kind"] for t in rest["trials"] if t["kind"] != "warmup"] == ["generation"] * 3
    assert [r["status"] for r in cells[second]] == ["ok"]


@slow
def test_a_trial_still_running_at_the_limit_is_stopped_and_the_rest_kept(
    tmp_path: Path, tiny_llama: Path, local_sweep: dict[str, Any]
) -> None:
    """The earlier sweep's trials make every guess short, so the sweep begins; its second repeat hangs. At
    the limit it is stopped as Ctrl-C stops it: the worker killed, the run interrupted, what finished kept."""
    db = tmp_path / "r.db"
    shutil.copy(local_sweep["db"], db)
    before = {r["id"] for runs in cells_in(db).values() for r in runs}
    began = time.monotonic()
    result = joulebench(
        "sweep", str(local_sweep["plan"]), "--db", str(db), "--time-limit", "30s",
        env={FAULT_ENV: "repeat-1:hang"},
    )  # fmt: skip
    took_s = time.monotonic() - began
    assert result.rc == 3, result.err
    assert 30 <= took_s < 30 + 20  # the worker's kill and the database's close, not the hang
    assert "the time limit was reached with a trial still running, which is lost" in result.err
    new = [r for runs in cells_in(db).values() for r in runs if r["id"] not in before]
    (run,) = new
    assert run["status"] == "interrupted"
    assert [(t["kind"], t["status"]) for t in run["trials"] if t["kind"] != "warmup"] == [
        ("setup", "ok"),
        ("generation", "ok"),
    ]


@slow
def test_a_cycle_the_limit_cut_between_park_and_sleep_is_run_whole_by_resume(
    tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit falls after the first park, before the sleep that completes its cycle: the 5 s left hold
    another park of 0.5 s, not a sleep whose wake may load the weights again (timed, with no sleep trial
    before it, at a whole setup trial: Transformers' first guess of 30 s). The cell has every repeat and
    is still left `later`, not reported done; --resume runs both cycles again whole, after one repeat that
    warms the engine as the first run's did, and the sleep trials it stores time the sleep and wake calls
    of the next estimate. The sweep runs in this process so that the deadline's clock can jump as the park
    ends; engine, runner, sweep and database are real."""
    from joulebench.cli.main import main
    from joulebench.runner import run as runner

    engine = {"name": "transformers", "park_s": 0.5, "sleep_levels": [2]}
    plan = cpu_plan(
        tmp_path, tiny_llama, repeats=2, setup_repeats=0, engines=[engine], workloads=WORKLOADS[:1]
    )
    db = tmp_path / "r.db"
    jump = [0.0]
    monkeypatch.setattr(deadline_module, "_now", lambda: time.time() + jump[0])
    real = runner.execute_many

    def spy(configs: Any, db: Any, **kw: Any) -> Any:
        said, end = kw["progress"], kw["deadline"].end_unix_s

        def progress(event: dict[str, Any]) -> None:
            if event["event"] == "trial" and event["kind"] == "park":
                jump[0] = end - time.time() - 5.0  # five seconds left
            if said is not None:
                said(event)

        return real(configs, db, **{**kw, "progress": progress})

    monkeypatch.setattr(runner, "execute_many", spy)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["sweep", str(plan), "--db", str(db), "--time-limit", "10m"])
    assert exit_.value.code == 3, out.getvalue()
    ((key, (run,)),) = cells_in(db).items()
    assert run["status"] == "interrupted"
    kinds = [(t["kind"], t["repeat_index"]) for t in run["trials"] if t["kind"] != "warmup"]
    assert kinds == [("generation", 0), ("generation", 1), ("park", 0)]
    reason = run["environment"]["time_limit"]
    assert reason.startswith("stopped at the time limit before sleep level 2 1 of 2 (expected 30 s, ")
    later = [line for line in out.getvalue().splitlines() if line.startswith("later ")]
    assert len(later) == 1 and key in later[0] and "before sleep level 2 1 of 2" in later[0]

    dry = joulebench("sweep", str(plan), "--db", str(db), "--resume", "--dry-run")
    assert dry.rc == 0, dry.err
    assert "0 setup trial(s), 1 generation repeat(s), 2 park-and-sleep cycle(s); estimated " in dry.out
    resumed = joulebench("sweep", str(plan), "--db", str(db), "--resume")
    assert resumed.rc == 0, resumed.err
    assert any(
        line.startswith("resume ")
        and line.endswith(f"2 of 2 repeats, 0 of 2 park-and-sleep cycles done earlier (run {run['id']})")
        for line in resumed.out.splitlines()
    ), resumed.out
    rest = cells_in(db)[key][-1]
    assert rest["status"] == "ok"
    kinds = [(t["kind"], t["repeat_index"]) for t in rest["trials"] if t["kind"] != "warmup"]
    assert kinds == [("generation", 0), ("park", 0), ("sleep", 0), ("park", 1), ("sleep", 1)]
    again = joulebench("sweep", str(plan), "--db", str(db), "--resume")
    assert again.rc == 0, again.err
    assert len(cells_in(db)[key]) == 2  # the cell is finished: nothing runs again

    (cell,) = expand(load_plan(plan), gpus=0)
    calls = [
        t["details"]["latency_s"]["sleep_enter"] + t["details"]["latency_s"]["wake"]
        for t in rest["trials"]
        if t["kind"] == "sleep"
    ]
    with ResultsDB(db) as store:
        times = trial_times(store, cell.config)
    assert dict(times.transition_s) == {2: statistics.median(calls)}


def test_the_dry_run_leaves_the_cells_that_do_not_fit_and_goes_on_with_those_that_do(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """By the defaults (setup 30 s, CPU repeat 20 s, one setup trial and one repeat, no idle): the
    Transformers group's first cell needs 30 + 30 + 2 x 20 = 100 s and its second 40 s; a second model's
    group the same. 150 s hold the first group whole, not the second's first cell."""
    other = tmp_path / "other-model"
    shutil.copytree(tiny_llama, other)
    plan = cpu_plan(tmp_path, tiny_llama, repeats=1, models=[str(tiny_llama), str(other)])
    dry = joulebench("sweep", str(plan), "--dry-run", "--time-limit", "150s", "--db", str(tmp_path / "r.db"))
    assert dry.rc == 0, dry.err
    states = [row.split()[-1] for row in dry.out.splitlines()[1:5]]
    assert states == ["pending", "pending", "later", "later"]
    assert "2 of 4 cells fit (about 2m20s); 2 left for a later --resume" in dry.out

"""The runner's reliability on a real engine (transformers, tiny Llama): a worker killed mid-run, Ctrl-C,
one engine start serving several workloads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joulebench.runner.run import execute, execute_many
from joulebench.runner.worker import FAULT_ENV
from joulebench.store.db import ResultsDB
from tests.runner.helpers import cpu_config, gone


def test_killed_worker_keeps_finished_trials_and_restarts(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "repeat-1:kill")  # the worker SIGKILLs itself when repeat 1 arrives
    result = execute(cpu_config(tiny_llama, repeats=3, estimate=True), tmp_path / "r.db")
    assert result.status == "partial"
    with ResultsDB(tmp_path / "r.db") as db:
        assert db.run(result.run_id)["status"] == "partial"
        trials = db.trials(result.run_id, "generation")
        assert [(t["repeat_index"], t["status"]) for t in trials] == [(0, "ok"), (1, "failed"), (2, "ok")]
        assert "worker killed by SIGKILL" in trials[1]["error"]
        # repeat 2 ran in a fresh worker, warmed up again
        assert trials[0]["details"]["worker_start"] == 1 and trials[2]["details"]["worker_start"] == 2
        assert trials[0]["details"]["worker_pid"] != trials[2]["details"]["worker_pid"]
        warm = db.trials(result.run_id, "warmup")
        assert [(t["repeat_index"], t["details"]["worker_start"]) for t in warm] == [(0, 1), (2, 2)]
        for t in (trials[0], trials[2]):
            assert t["output_tokens"] == 16 and len(db.requests(t["id"])) == 2
            rows = db.stage_energy(t["id"])
            # --estimate: the estimated components are labelled as such
            estimated = [r for r in rows if r["estimated"]]
            assert estimated and all(r["method"] == "estimated" for r in estimated)
            assert t["details"]["metrics"]["j_per_token.total_incl_estimated"] > 0
            assert "j_per_token.total" not in t["details"]["metrics"]  # nothing measured: no measured total
            trace = db.trace(t["id"])  # the estimate's readings over the trial's window
            assert trace and any("t_s" in line for line in trace)
    failures = result.summary["failures"]
    assert [(f["kind"], f["repeat_index"]) for f in failures] == [("generation", 1)]
    assert result.summary["generation"]["metrics"]["output_tokens"]["n"] == 2


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "hangup"]
)
def test_ctrl_c_marks_the_run_interrupted_and_keeps_finished_trials(
    tiny_llama: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C, SIGTERM (what Slurm, systemd and `timeout` send), which left the run `running`, and SIGHUP
    (a closed terminal), which killed the manager and left its worker generating on its own."""
    db_path = tmp_path / "r.db"
    cmd = [
        sys.executable, "-m", "joulebench", "run", "--model", str(tiny_llama), "--batch-size", "2",
        "--output-tokens", "8", "--length-mode", "fixed", "--repeats", "3", "--setup-repeats", "0",
        "--device", "cpu", "--idle-s", "0", "--db", str(db_path), "--json",
    ]  # fmt: skip
    # Repeat 1 hangs, so the interrupt lands at a known point: after repeat 0 was written.
    env = {**os.environ, FAULT_ENV: "repeat-1:hang"}
    # Ctrl-C as a terminal delivers it: a suite started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then raises no KeyboardInterrupt in its children either
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if db_path.exists():
                with ResultsDB(db_path) as db:
                    runs = db.runs()
                    if runs and db.trials(runs[0]["id"], "generation"):
                        break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(1.0)  # let repeat 1 start and hang
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    (line,) = err.strip().splitlines()
    kept, logs = line.split("; logs: ")
    assert kept == f"joulebench: interrupted; finished trials are kept in {db_path}"
    assert Path(logs).parent == db_path.parent / "joulebench-logs"
    assert (Path(logs) / "joulebench.log").is_file()
    with ResultsDB(db_path) as db:
        (run,) = db.runs()
        assert run["status"] == "interrupted" and run["finished_unix_s"] is not None
        trials = db.trials(run["id"])
        assert [(t["kind"], t["repeat_index"], t["status"]) for t in trials] == [
            ("warmup", 0, "ok"),
            ("generation", 0, "ok"),
        ]
        assert gone(trials[1]["details"]["worker_pid"])  # the hung worker was killed, not orphaned


def test_execute_many_shares_one_engine_start(tiny_llama: Path, tmp_path: Path) -> None:
    configs = [
        cpu_config(tiny_llama, repeats=1, warmup=False, output_tokens=4),
        cpu_config(tiny_llama, repeats=1, warmup=False, output_tokens=6, batch_size=3),
    ]
    results = execute_many(configs, tmp_path / "r.db")
    assert [r.status for r in results] == ["ok", "ok"]
    with ResultsDB(tmp_path / "r.db") as db:
        runs = db.runs()
        assert [(r["batch_size"], r["output_tokens"]) for r in runs] == [(2, 4), (3, 6)]
        (a,) = db.trials(runs[0]["id"])
        (b,) = db.trials(runs[1]["id"])
        assert a["details"]["worker_pid"] == b["details"]["worker_pid"]  # one worker served both
        assert (a["output_tokens"], b["output_tokens"]) == (8, 18)


def test_a_short_warm_up_keeps_the_batch_and_cuts_its_output(tiny_llama: Path, tmp_path: Path) -> None:
    result = execute(cpu_config(tiny_llama, repeats=1, output_tokens=8, warmup_tokens=3), tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        (trial,) = db.trials(result.run_id, "generation")
        assert trial["output_tokens"] == 16  # the measured batch keeps its length
        (warm,) = db.trials(result.run_id, "warmup")
        assert warm["output_tokens"] == warm["details"]["warmup_output_tokens"] == 6  # 2 requests x 3 tokens


def test_the_warm_up_is_stored_before_the_first_repeat_starts(tiny_llama: Path, tmp_path: Path) -> None:
    """A run cut off during its first repeat (a long one: minutes at 256 x 2,000 on a GPU) keeps the
    measured warm-up: it is in the database, with its window, when the repeat begins."""
    seen: list[list[tuple[str, int, str]]] = []

    def progress(info: dict[str, object]) -> None:
        if info["event"] == "phase" and info["phase"] == "generate" and info["index"] == 0:
            with ResultsDB(tmp_path / "r.db") as other:  # another connection: only what is committed
                (run,) = other.runs()
                seen.append([(t["kind"], t["repeat_index"], t["status"]) for t in other.trials(run["id"])])
                (warm,) = other.trials(run["id"], "warmup")
                assert {r["stage"] for r in other.stage_energy(warm["id"])} == {"warmup"}

    result = execute(cpu_config(tiny_llama, repeats=1, output_tokens=4), tmp_path / "r.db", progress=progress)
    assert result.status == "ok"
    assert seen == [[("warmup", 0, "ok")]]  # no idle baseline, no setup trial (cpu_config)


def test_unmonitored_repeats_alternate_with_measured_ones_in_one_engine(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from joulebench.results.tidy import tidy_trial_metrics
    from joulebench.runner.summary import summarize_run
    from joulebench.store.frames import load_frames

    config = cpu_config(tiny_llama, repeats=2, unmonitored_repeats=2, estimate=True)
    result = execute(config, tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        trials = db.trials(result.run_id, "generation")
        assert [t["details"]["monitored"] for t in trials] == [True, False, True, False]
        assert len({t["details"]["worker_pid"] for t in trials}) == 1  # one warm engine for both kinds
        for t in trials:
            rows = db.stage_energy(t["id"])
            measured = [r for r in rows if r["energy_j"] is not None]
            assert bool(measured) == t["details"]["monitored"]  # paused: times only, no energy
        overhead = summarize_run(db, result.run_id)["generation"]["monitor_overhead"]
        assert overhead["tokens_per_s_unmonitored"]["n"] == 2 and overhead["tokens_per_s_monitored"]["n"] == 2
    metrics = tidy_trial_metrics(load_frames(tmp_path / "r.db"))
    tokens = metrics[(metrics["metric"] == "tokens_per_s") & (metrics["stage"] == "generate")]
    assert sorted(set(tokens["engine"])) == ["transformers", "transformers:unmonitored"]
    assert list(tokens.groupby("engine").size()) == [2, 2]


def test_a_batch_that_runs_out_of_memory_twice_is_given_up(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every repeat would run out of memory: the first in the warm engine, the second in a fresh one; the
    # other repeats are recorded as not run instead of spending minutes each failing the same way
    monkeypatch.setenv(FAULT_ENV, "repeat-0:oom,repeat-1:oom,repeat-2:oom,repeat-3:oom")
    result = execute(cpu_config(tiny_llama, repeats=4), tmp_path / "r.db")
    assert result.status == "failed"
    with ResultsDB(tmp_path / "r.db") as db:
        trials = db.trials(result.run_id, "generation")
        assert [(t["repeat_index"], t["status"]) for t in trials] == [(i, "failed") for i in range(4)]
        ran, skipped = trials[:2], trials[2:]
        assert all("OutOfMemoryError" in t["error"] and t["details"]["out_of_memory"] for t in ran)
        assert all(not t["details"].get("not_run") for t in ran)
        for t in skipped:
            assert t["details"] == {"out_of_memory": True, "not_run": True}
            assert t["error"].startswith("not run: the 2 repeats before ran out of device memory")
            assert "expandable_segments" in t["error"]
        # the runner's verdict, with the run: a sweep reads it and does not try again
        assert db.run(result.run_id)["environment"]["out_of_memory"] is True


def test_one_out_of_memory_repeat_is_retried_in_a_fresh_engine(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "repeat-0:oom")
    result = execute(cpu_config(tiny_llama, repeats=3), tmp_path / "r.db")
    assert result.status == "partial"
    with ResultsDB(tmp_path / "r.db") as db:
        trials = db.trials(result.run_id, "generation")
        assert [t["status"] for t in trials] == ["failed", "ok", "ok"]
        assert trials[0]["details"]["out_of_memory"] and trials[1]["details"]["worker_start"] == 2
        assert "out_of_memory" not in db.run(result.run_id)["environment"]  # not given up


def test_the_engine_environment_is_set_and_recorded(tiny_llama: Path, tmp_path: Path) -> None:
    # the fault variable, set only as the run's engine environment, makes the engine's worker fail at
    # repeat 1: proof that it reached the process
    config = cpu_config(tiny_llama, repeats=2, engine_env={FAULT_ENV: "repeat-1:raise", "OMP_NUM_THREADS": 1})
    result = execute(config, tmp_path / "r.db")
    assert result.status == "partial"
    with ResultsDB(tmp_path / "r.db") as db:
        run = db.run(result.run_id)
        assert run["config"]["engine_env"] == {FAULT_ENV: "repeat-1:raise", "OMP_NUM_THREADS": 1}
        assert run["environment"]["engine_env"]["OMP_NUM_THREADS"] == "1"
        trials = db.trials(result.run_id, "generation")
        assert [t["status"] for t in trials] == ["ok", "failed"]
        assert "injected fault at repeat-1" in trials[1]["error"]


def test_a_manager_killed_outright_takes_its_worker_with_it(tiny_llama: Path, tmp_path: Path) -> None:
    """SIGKILL (an OOM kill, `kill -9`) cannot be handled: the kernel ends the worker with its manager."""
    db_path = tmp_path / "r.db"
    cmd = [
        sys.executable, "-m", "joulebench", "run", "--model", str(tiny_llama), "--batch-size", "2",
        "--output-tokens", "8", "--length-mode", "fixed", "--repeats", "3", "--setup-repeats", "0",
        "--device", "cpu", "--idle-s", "0", "--db", str(db_path), "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, FAULT_ENV: "repeat-1:hang"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 300
        while worker is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if db_path.exists():
                with ResultsDB(db_path) as db:
                    runs = db.runs()
                    gen = db.trials(runs[0]["id"], "generation") if runs else []
                    worker = gen[0]["details"].get("worker_pid") if gen else None
        assert worker, "the first repeat did not finish"
        proc.kill()
        proc.wait(timeout=30)
        gone = time.monotonic() + 15
        while time.monotonic() < gone:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError(f"worker {worker} outlived its manager")
    finally:
        if proc.poll() is None:
            proc.kill()

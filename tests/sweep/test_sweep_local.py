"""Sweeps through the real runner and the real Transformers engine on CPU, with the local executor."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from joulebench.runner.worker import FAULT_ENV
from joulebench.sweep.cells import expand
from joulebench.sweep.plan import load_plan
from tests.sweep.conftest import SHAPES, WORKLOADS, cells_in, cpu_plan, joulebench

pytestmark = pytest.mark.slow  # real engine workers


def test_every_cell_runs_once_with_its_key(local_sweep: dict[str, Any]) -> None:
    assert local_sweep["rc"] == 0, local_sweep["out"]
    keys = [c.key for c in expand(load_plan(local_sweep["plan"]), gpus=0)]
    cells = cells_in(local_sweep["db"])
    assert sorted(cells) == sorted(keys)
    for i, key in enumerate(keys):
        (run,) = cells[key]
        assert run["status"] == "ok" and run["engine"] == "transformers" and run["device"] == "cpu"
        assert run["config"]["sweep_key"] == key
        # the setup trial belongs to the engine and model: it runs with the first workload only
        setup = [("setup", "ok")] if i == 0 else []
        assert [(t["kind"], t["status"]) for t in run["trials"]] == [
            *setup,
            ("warmup", "ok"),  # each shape warmed up once, before its first repeat
            ("generation", "ok"),
            ("generation", "ok"),
        ]
        batch, out = run["batch_size"], run["output_tokens"]
        for t in run["trials"][len(setup) :]:  # fixed length: every request gives exactly output_tokens
            if t["kind"] == "warmup":
                assert t["output_tokens"] == batch * out
                continue
            assert t["request_tokens"] == [out] * batch and t["output_tokens"] == batch * out
    assert {(r["batch_size"], r["output_tokens"]) for runs in cells.values() for r in runs} == SHAPES
    summary = local_sweep["out"].strip().splitlines()[-1]
    assert summary.startswith("sweep cpu-tiny: 2 ok, 0 failed, 0 skipped")


def test_a_sweep_says_each_warm_up_and_trial_as_it_ends(local_sweep: dict[str, Any]) -> None:
    runs = {r["id"]: r for runs in cells_in(local_sweep["db"]).values() for r in runs}
    out = local_sweep["out"].splitlines()
    for run_id, run in runs.items():
        mine = [line.split(f" run {run_id}: ", 1)[1] for line in out if f" run {run_id}: " in line]
        shape = f"({run['batch_size']} × {run['output_tokens']} tokens)"
        assert mine[0] == f"transformers {run['model_label']} smoke {shape}"
        setup = [line for line in mine if line.startswith("setup trial ")]
        has_setup = any(t["kind"] == "setup" for t in run["trials"])
        assert len(setup) == int(has_setup)
        assert all(line.startswith("setup trial 1 of 1 ok in ") for line in setup)
        repeats = [line for line in mine if line.startswith("repeat ")]
        assert [line.split(" ok in ")[0] for line in repeats] == ["repeat 1 of 2", "repeat 2 of 2"]
        assert all(" tokens/s" in line for line in repeats)
        # one engine start for both cells: only the first shape's warm-up follows the start, and every
        # shape is warmed up once, before its first repeat
        warmed = [i for i, line in enumerate(mine) if line.startswith("warm-up done in ")]
        assert len(warmed) == 1 and warmed[0] < mine.index(repeats[0])
        assert f"({run['batch_size'] * run['output_tokens']} tokens" in mine[warmed[0]]


def test_cells_of_one_engine_and_model_share_one_engine_start(local_sweep: dict[str, Any]) -> None:
    (call,) = local_sweep["calls"]
    assert [(c.batch_size, c.output_tokens) for c in call] == [(2, 4), (3, 6)]


def test_dry_run_estimates_from_history_and_resume_skips_finished(local_sweep: dict[str, Any]) -> None:
    plan, db = str(local_sweep["plan"]), str(local_sweep["db"])
    again = joulebench("sweep", plan, "--dry-run", "--db", db)
    assert again.rc == 0, again.err
    rows = again.out.strip().splitlines()[1:-1]
    assert len(rows) == 2 and all(r.split()[8] == "history" and r.split()[-1] == "pending" for r in rows)
    resumed = joulebench("sweep", plan, "--dry-run", "--resume", "--db", db)
    assert [r.split()[-1] for r in resumed.out.strip().splitlines()[1:-1]] == ["done", "done"]
    assert resumed.out.strip().endswith("2 cells (0 to run) in 0 engine start(s): 0 setup trial(s), "
                                        "0 generation repeat(s); estimated 0s")  # fmt: skip
    before = cells_in(local_sweep["db"])
    result = joulebench("sweep", plan, "--resume", "--db", db)
    assert result.rc == 0, result.err
    assert sum(line.startswith("skipped ") for line in result.out.splitlines()) == 2
    assert cells_in(local_sweep["db"]) == before  # nothing ran again


def test_failed_cells_are_retried_then_recorded_and_the_sweep_goes_on(
    tmp_path: Path, tiny_llama: Path
) -> None:
    broken_config = tmp_path / "broken-config"  # fails in the runner's checks: no run row of its own
    shutil.copytree(tiny_llama, broken_config)
    (broken_config / "config.json").write_text("{not json")
    # whole and well-formed, so no check before the run can tell; a tensor of the wrong shape fails in the
    # engine worker, when the engine loads it: the runner records it
    broken_weights = tmp_path / "broken-weights"
    shutil.copytree(tiny_llama, broken_weights)
    from safetensors.torch import load_file, save_file

    weights = load_file(broken_weights / "model.safetensors")
    name = next(k for k in weights if k.endswith("embed_tokens.weight"))
    weights[name] = weights[name][:, :1].clone()
    save_file(weights, broken_weights / "model.safetensors", metadata={"format": "pt"})
    plan = cpu_plan(
        tmp_path,
        tiny_llama,
        repeats=1,
        setup_repeats=0,
        models=[str(broken_config), str(broken_weights), str(tiny_llama)],
        workloads=WORKLOADS[:1],
    )
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"), "--max-retries", "1")
    assert result.rc == 1, result.err
    key_of = {Path(c.config.model).name: c.key for c in expand(load_plan(plan), gpus=0)}
    cells = cells_in(tmp_path / "r.db")
    (recorded,) = cells[key_of["broken-config"]]  # two attempts, one failed run written by the sweep
    assert recorded["status"] == "failed" and recorded["trials"] == []
    assert recorded["config"]["sweep"]["attempts"] == 2
    assert "not a valid JSON" in recorded["config"]["sweep"]["error"]
    attempts = cells[key_of["broken-weights"]]
    assert [r["status"] for r in attempts] == ["failed", "failed"]
    assert all(t["status"] == "failed" for r in attempts for t in r["trials"])
    assert [r["status"] for r in cells[key_of["tiny-llama0"]]] == ["ok"]  # the sweep went on
    lines = result.out.splitlines()
    assert sum(line.startswith("failed ") and "after 2 attempt(s)" in line for line in lines) == 2
    assert "1 ok, 2 failed, 0 skipped" in lines[-1]


def test_a_retry_runs_cells_one_by_one_so_a_bad_one_cannot_fail_its_group(
    tmp_path: Path, tiny_llama: Path
) -> None:
    bad_prompts = tmp_path / "bad.jsonl"  # passes the plan checks, rejected when the runner loads it
    bad_prompts.write_text('{"text": "no prompt field"}\n')
    bad = {**WORKLOADS[0], "dataset": f"prompts:{bad_prompts}"}
    plan = cpu_plan(tmp_path, tiny_llama, repeats=1, setup_repeats=0, workloads=[WORKLOADS[0], bad])
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"), "--max-retries", "1")
    assert result.rc == 1, result.err
    good_key, bad_key = (c.key for c in expand(load_plan(plan), gpus=0))
    cells = cells_in(tmp_path / "r.db")
    # attempt 1 ran the group together and the runner refused it whole; attempt 2 ran each cell alone
    assert [r["status"] for r in cells[good_key]] == ["ok"]
    (recorded,) = cells[bad_key]
    assert recorded["status"] == "failed" and "'prompt' is missing" in recorded["config"]["sweep"]["error"]
    lines = result.out.splitlines()
    assert any(line.startswith("ok ") and good_key in line and "(attempt 2)" in line for line in lines)
    assert any(line.startswith("failed ") and bad_key in line for line in lines)


def test_a_cell_that_runs_out_of_memory_is_not_retried(tmp_path: Path, tiny_llama: Path) -> None:
    # the plan's engine environment reaches the engine's worker, which fails every repeat as a CUDA
    # allocation that does not fit would; another attempt would need as much memory, so there is none
    fault = {FAULT_ENV: "repeat-0:oom,repeat-1:oom"}
    engines = [{"name": "transformers", "env": fault}]
    plan = cpu_plan(
        tmp_path, tiny_llama, repeats=2, setup_repeats=0, engines=engines, workloads=WORKLOADS[:1]
    )
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"), "--max-retries", "2")
    assert result.rc == 1, result.err
    ((key, runs),) = cells_in(tmp_path / "r.db").items()
    (run,) = runs  # one attempt only
    assert run["status"] == "failed" and run["config"]["engine_env"] == fault
    gen = [t for t in run["trials"] if t["kind"] == "generation"]
    assert [t["details"]["out_of_memory"] for t in gen] == [True, True]
    assert run["environment"]["out_of_memory"] is True  # the runner's verdict, which the sweep read
    (line,) = [line for line in result.out.splitlines() if line.startswith("failed ")]
    assert key in line and "after 1 attempt(s)" in line and "OutOfMemoryError" in line
    assert line.endswith("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")


def test_a_cell_finished_by_an_earlier_sweep_fails_when_its_new_run_does(
    tmp_path: Path, tiny_llama: Path
) -> None:
    plan = cpu_plan(tmp_path, tiny_llama, repeats=1, setup_repeats=0, workloads=WORKLOADS[:1])
    db = str(tmp_path / "r.db")
    assert joulebench("sweep", str(plan), "--db", db).rc == 0
    fault = {FAULT_ENV: "repeat-0:raise"}
    again = joulebench("sweep", str(plan), "--db", db, "--max-retries", "0", env=fault)
    assert again.rc == 1, again.out  # the earlier ok run does not stand in for this one
    ((key, runs),) = cells_in(tmp_path / "r.db").items()
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert any(line.startswith("failed ") and key in line for line in again.out.splitlines())


def _ok_runs(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT id, sweep_key FROM runs WHERE status = 'ok' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []
    finally:
        conn.close()


def test_resume_after_a_killed_sweep_runs_only_the_rest(tmp_path: Path, tiny_llama: Path) -> None:
    # the second cell is long enough (no setup trial of its own, 400 tokens) for the kill to land inside it
    workloads = [
        WORKLOADS[0],
        {"name": "smoke", "batch_size": 3, "output_tokens": 400, "length_mode": "fixed"},
        {"name": "smoke", "batch_size": 1, "output_tokens": 5, "length_mode": "fixed"},
    ]
    plan = cpu_plan(tmp_path, tiny_llama, repeats=1, workloads=workloads)
    db = tmp_path / "r.db"
    # its own session, so that the kill takes the engine workers with it, as a closed terminal would
    proc = subprocess.Popen(
        [sys.executable, "-m", "joulebench", "sweep", str(plan), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _ok_runs(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    finished = _ok_runs(db)
    assert len(finished) == 1, f"the kill should land after the first cell, before the last: {finished}"
    keys = [c.key for c in expand(load_plan(plan), gpus=0)]

    result = joulebench("sweep", str(plan), "--resume", "--db", str(db))
    assert result.rc == 0, result.err
    assert "2 ok, 0 failed, 1 skipped" in result.out
    after = _ok_runs(db)
    assert after[0] == finished[0]  # the finished cell kept its run and was not redone
    assert sorted(k for _, k in after) == sorted(keys)  # one ok run per cell
    cells = cells_in(db)
    cut = [r for runs in cells.values() for r in runs if r["status"] != "ok"]
    # the run the kill cut off: its process is gone, so --resume closed it (it stayed "running" before)
    assert len(cut) <= 1 and all(r["status"] == "interrupted" and r["finished_unix_s"] for r in cut)
    if cut:
        assert f"closed run(s) {cut[0]['id']}, left 'running' by a process that is gone" in result.out


def test_a_lifecycle_plan_runs_its_setup_grid_and_parks_and_resumes_to_nothing(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """Setup factors and parking from an engine entry reach the runs a sweep makes; a resumed sweep whose
    cells have all they asked for runs nothing again."""
    engine = {"name": "transformers", "park_s": 1, "setup_factors": {"page_cache": ["cold", "warm"]}}
    plan = cpu_plan(tmp_path, tiny_llama, repeats=1, engines=[engine], workloads=WORKLOADS[:1],
                    defaults={"idle_s": 1})  # fmt: skip
    db = tmp_path / "r.db"
    first = joulebench("sweep", str(plan), "--db", str(db))
    assert first.rc == 0, first.err
    ((run,),) = cells_in(db).values()
    kinds = [(t["kind"], t["status"]) for t in run["trials"]]
    assert kinds == [("idle", "ok"), ("setup", "ok"), ("setup", "ok"), ("warmup", "ok"), ("generation", "ok"),
                     ("park", "ok")]  # fmt: skip
    setups = [t for t in run["trials"] if t["kind"] == "setup"]
    assert [t["details"]["factors"]["page_cache"] for t in setups] == ["cold", "warm"]
    again = joulebench("sweep", str(plan), "--db", str(db), "--resume")
    assert again.rc == 0, again.err
    assert len(cells_in(db)[run["sweep_key"]]) == 1  # nothing left to run: no new run

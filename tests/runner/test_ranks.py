"""Engines that run as several ranks, started by the runner as a launcher would: DeepSpeed's tensor
parallelism and Transformers' tp_plan, two ranks on CPU (gloo), end to end through the real runner."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from joulebench.runner.config import RunConfig
from joulebench.runner.ranks import free_port, rank_env
from joulebench.runner.run import execute
from joulebench.runner.worker import FAULT_ENV
from joulebench.store.db import ResultsDB
from tests.runner.helpers import cpu_config, gone


def _config(model: Path, **over: object) -> RunConfig:
    """Two ranks of DeepSpeed on CPU, two requests of 6 tokens."""
    settings: dict[str, object] = dict(
        engine="deepspeed", dtype="float32", tensor_parallel=2, output_tokens=6
    )
    return cpu_config(model, **{**settings, **over})


def test_rank_environment_is_what_a_launcher_sets() -> None:
    port = free_port()
    with socket.socket() as s:  # free now: it can be bound
        s.bind(("127.0.0.1", port))
    assert rank_env(1, 2, port) == {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "LOCAL_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def _shared_memory() -> set[str]:
    """DeepSpeed's all-reduce segments of this user in /dev/shm (its CPU all-reduce makes one per rank)."""
    return {p.name for p in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*")}


def test_deepspeed_tensor_parallel_runs_as_two_ranks(tiny_llama: Path, tmp_path: Path) -> None:
    pytest.importorskip("deepspeed")
    before = _shared_memory()
    seen: list[set[str]] = []

    def progress(event: dict[str, object]) -> None:
        if event["event"] == "phase" and event["phase"] == "generate":
            seen.append(_shared_memory() - before)

    result = execute(_config(tiny_llama, setup_repeats=1, repeats=2), tmp_path / "r.db", progress=progress)
    assert result.status == "ok"
    # each rank's segment exists while the group runs, and is gone once it has exited
    assert seen and all(len(new) == 2 for new in seen)
    assert _shared_memory() == before
    with ResultsDB(tmp_path / "r.db") as db:
        (setup,) = db.trials(result.run_id, "setup")
        details = setup["details"]["engine_info"]["details"]
        # the shards: DeepSpeed's automatic tensor parallelism over a world of two
        assert (details["path"], details["world_size"]) == ("auto-tp", 2)
        assert setup["output_tokens"] == 1
        trials = db.trials(result.run_id, "generation")
        assert [t["output_tokens"] for t in trials] == [12, 12]
        assert trials[0]["details"]["engine_info"]["details"]["world_size"] == 2
        assert all(gone(t["details"]["worker_pid"]) for t in trials)


def test_a_rank_that_dies_fails_its_group_and_a_fresh_group_goes_on(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rank 1 dies as repeat 1 arrives; rank 0 would wait in its first all-reduce until the timeout
    pytest.importorskip("deepspeed")
    monkeypatch.setenv(FAULT_ENV, "repeat-1:kill@1")
    before = _shared_memory()
    result = execute(_config(tiny_llama, repeats=3, trial_timeout_s=120.0), tmp_path / "r.db")
    assert result.status == "partial"
    assert _shared_memory() == before  # the killed group's segments too
    with ResultsDB(tmp_path / "r.db") as db:
        trials = db.trials(result.run_id, "generation")
        assert [t["status"] for t in trials] == ["ok", "failed", "ok"]
        assert trials[1]["error"].startswith("rank 1: worker killed by SIGKILL")
        assert trials[1]["duration_s"] < 60  # not the timeout: the group saw rank 1 go
        assert trials[2]["details"]["worker_start"] == 2 and trials[2]["output_tokens"] == 12


def test_transformers_tp_plan_runs_as_two_ranks(tiny_llama: Path, tmp_path: Path) -> None:
    config = _config(tiny_llama, engine="transformers", engine_options={"tp_plan": "auto"}, repeats=1)
    result = execute(config, tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        (trial,) = db.trials(result.run_id, "generation")
        assert trial["details"]["engine_info"]["details"]["parallel"] == "tp_plan"
        assert trial["output_tokens"] == 12

"""The real worker process under the manager's control: crashes, hangs and errors become WorkerFailed,
and the worker is gone afterwards. Faults are injected where the worker reaches ``setup``, before an
engine is imported, so these tests take seconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.runner.process import WorkerFailed, WorkerProcess
from joulebench.runner.setup_trial import worker_spec
from joulebench.runner.worker import FAULT_ENV


def _worker(tmp_path: Path, fault: str | None, engine: str = "transformers") -> WorkerProcess:
    env = {FAULT_ENV: fault} if fault else {FAULT_ENV: ""}
    spec = worker_spec(engine, EngineConfig(model=str(tmp_path / "no-model"), device="cpu"))
    return WorkerProcess(spec, log_dir=tmp_path, name="w", env=env)


def _setup_failure(w: WorkerProcess) -> WorkerFailed:
    """How ``w`` fails while setting up: it must fail, not hang."""
    w.start()
    with pytest.raises(WorkerFailed) as info:
        w.wait_for("ready", timeout_s=60.0)
    return info.value


def test_hang_times_out_and_is_killed(tmp_path: Path) -> None:
    w = _worker(tmp_path, "setup:hang")
    w.start()
    with pytest.raises(WorkerFailed) as info:
        w.wait_for("ready", timeout_s=3.0)
    assert info.value.timed_out
    assert str(info.value).startswith("timed out")
    assert w.proc is not None and w.proc.poll() is not None
    assert w.started_s is not None and w.spawn_s is not None and w.started_s > w.spawn_s


def test_sigkill_is_reported(tmp_path: Path) -> None:
    w = _worker(tmp_path, "setup:kill")
    w.start()
    with pytest.raises(WorkerFailed, match="worker killed by SIGKILL") as info:
        w.wait_for("ready", timeout_s=60.0)
    assert not info.value.timed_out


def test_exception_carries_the_stderr_tail(tmp_path: Path) -> None:
    failure = _setup_failure(_worker(tmp_path, "setup:raise"))
    text = str(failure)
    assert text.splitlines()[0] == "setup: RuntimeError: injected fault at setup"
    assert "Traceback" in text  # the last lines of the worker's stderr follow
    assert failure.usage is None


def test_bad_input_found_in_the_worker_is_a_usage_error(tmp_path: Path) -> None:
    failure = _setup_failure(_worker(tmp_path, None, engine="no-such-engine"))
    assert failure.usage is not None and "unknown engine 'no-such-engine'" in failure.usage


def test_out_of_memory_is_told_apart_from_other_errors(tmp_path: Path) -> None:
    failure = _setup_failure(_worker(tmp_path, "setup:oom"))
    assert failure.out_of_memory
    assert str(failure).startswith("setup: OutOfMemoryError: CUDA out of memory.")
    assert not _setup_failure(_worker(tmp_path, "setup:raise")).out_of_memory


def test_the_engine_environment_reaches_the_worker_process(tmp_path: Path) -> None:
    # the fault is read from the worker's own environment: set only through EngineConfig.env, it must fire
    config = EngineConfig(model=str(tmp_path / "no-model"), device="cpu", env={FAULT_ENV: "setup:raise"})
    from joulebench.runner.generation import GenerationSession

    session = GenerationSession("transformers", config, log_dir=tmp_path, env={})
    with pytest.raises(WorkerFailed, match="injected fault at setup"):
        session.start(timeout_s=60.0)
    session.kill()


def test_a_group_of_ranks_that_hangs_times_out_and_every_rank_is_killed(tmp_path: Path) -> None:
    from joulebench.runner.ranks import WorkerGroup

    spec = worker_spec(
        "deepspeed", EngineConfig(model=str(tmp_path / "no-model"), device="cpu", tensor_parallel=2)
    )
    group = WorkerGroup(spec, log_dir=tmp_path, name="g", env={FAULT_ENV: "setup:hang"}, ranks=2)
    group.start()
    with pytest.raises(WorkerFailed) as info:
        group.wait_for("ready", timeout_s=3.0)
    # whichever rank is looked at when the time is up is named
    assert info.value.timed_out and re.match(r"rank [01]: timed out", str(info.value))
    assert not group.alive and all(w.proc is not None and w.proc.poll() is not None for w in group.workers)
    assert sorted(p.name for p in tmp_path.glob("g-rank*.log")) == ["g-rank0.log", "g-rank1.log"]


def test_one_failing_rank_fails_the_group_at_once(tmp_path: Path) -> None:
    from joulebench.runner.ranks import WorkerGroup

    spec = worker_spec(
        "deepspeed", EngineConfig(model=str(tmp_path / "no-model"), device="cpu", tensor_parallel=2)
    )
    # rank 0 would wait for ever; rank 1 fails, and the group does not wait for rank 0's timeout
    group = WorkerGroup(
        spec, log_dir=tmp_path, name="g", env={FAULT_ENV: "setup:hang@0,setup:raise@1"}, ranks=2
    )
    group.start()
    with pytest.raises(WorkerFailed) as info:
        group.wait_for("ready", timeout_s=120.0)
    assert str(info.value).startswith("rank 1: setup: RuntimeError: injected fault at setup")
    assert not info.value.timed_out and not group.alive

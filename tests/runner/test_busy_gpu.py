"""Another process on the GPU: an idle baseline taken while it keeps the GPU busy is flagged where the user
looks (the run's progress line, its summary, its idle trial), and an engine that cannot start is told how
much device memory was in use. NVML is the fake at the pynvml seam (this machine has no GPU); the engine is
the real tiny Llama on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from joulebench.measurement.monitor import Monitor
from joulebench.measurement.nvml import NvmlSource
from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml
from joulebench.runner import monitoring
from joulebench.runner.display import LineProgress
from joulebench.runner.run import execute
from joulebench.runner.worker import FAULT_ENV
from joulebench.store.db import ResultsDB
from tests.runner.helpers import cpu_config


def _fake_gpu_monitor(monkeypatch: pytest.MonkeyPatch, gpu: FakeGpu) -> None:
    def start(config: Any, stage_file: Path) -> Monitor:
        monitor = Monitor([NvmlSource(FakeNvml([gpu]), visible_devices="0")])
        monitor.start()
        monitor.follow_stage_file(stage_file)
        return monitor

    monkeypatch.setattr(monitoring, "start_monitor", start)


def test_a_busy_gpu_during_the_idle_baseline_is_reported(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another process's batch: 89 % utilisation and 422 W, as a neighbour's engine showed on an H200
    _fake_gpu_monitor(monkeypatch, FakeGpu(power_w=422.0, utilization_pct=89.0, memory_used_mib=57_673))
    lines: list[str] = []
    result = execute(
        cpu_config(tiny_llama, repeats=1, warmup=False, idle_s=1.0),
        tmp_path / "r.db",
        progress=LineProgress(lines.append),
    )
    assert result.status == "ok"
    (busy,) = [line for line in lines if "warning:" in line]
    assert "gpu0 up to 89 % utilisation" in busy
    assert any("gpu0 up to 89 %" in w for w in result.summary["warnings"])
    with ResultsDB(tmp_path / "r.db") as db:
        (idle,) = db.trials(result.run_id, "idle")
        assert idle["details"]["idle_utilization_pct"] == {"gpu0": 89.0}
        assert "gpu0 up to 89 %" in idle["details"]["idle_busy"]
        (start,) = db.run(result.run_id)["environment"]["devices_start"]
        assert start["attributes"]["memory_used_mib"] == 57_673


def test_an_idle_gpu_gives_no_warning(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gpu_monitor(monkeypatch, FakeGpu(power_w=70.0, utilization_pct=0.0))
    result = execute(cpu_config(tiny_llama, repeats=1, warmup=False, idle_s=1.0), tmp_path / "r.db")
    assert result.status == "ok"
    assert not any("idle baseline" in w for w in result.summary["warnings"])
    with ResultsDB(tmp_path / "r.db") as db:
        (idle,) = db.trials(result.run_id, "idle")
        assert idle["details"]["idle_utilization_pct"] == {"gpu0": 0.0}
        assert "idle_busy" not in idle["details"]


def test_an_engine_that_cannot_start_is_told_what_device_memory_was_in_use(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a vLLM lane met on an H200 beside a stopped lane's process: "Engine core initialization failed"
    _fake_gpu_monitor(monkeypatch, FakeGpu(memory_used_mib=57_673, memory_total_mib=143_771))
    monkeypatch.setenv(FAULT_ENV, "setup:raise")
    result = execute(cpu_config(tiny_llama, setup_repeats=1, repeats=2, warmup=False), tmp_path / "r.db")
    assert result.status == "failed"
    with ResultsDB(tmp_path / "r.db") as db:
        (setup,) = db.trials(result.run_id, "setup")
        trials = db.trials(result.run_id, "generation")
    assert setup["status"] == "failed" and "injected fault at setup" in setup["error"]
    assert "device memory in use when it failed: gpu0 57,673 of 143,771 MiB" in setup["error"]
    assert [t["status"] for t in trials] == ["failed", "failed"]
    for t in trials:
        assert t["error"].startswith("engine start failed: ") and "injected fault at setup" in t["error"]
        assert "device memory in use when it failed: gpu0 57,673 of 143,771 MiB" in t["error"]

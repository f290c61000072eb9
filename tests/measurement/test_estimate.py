"""Estimates from /proc: utilisation x TDP, installed memory x W/GiB, always labelled estimated."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.measurement.estimate import (
    DEFAULT_W_PER_CORE,
    DRAM_W_PER_GIB,
    EstimateSource,
    tdp_for_model,
)
from joulebench.measurement.nvml_fake import ManualClock
from joulebench.measurement.records import Component

CPUINFO = "processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Gold 6426Y\nphysical id\t: {s}\n\n"


def _proc(root: Path, busy: int, idle: int, sockets: int = 2, mem_kb: int = 64 * 1024 * 1024) -> Path:
    root.mkdir(exist_ok=True)
    # user nice system idle iowait irq softirq steal guest guest_nice
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    (root / "cpuinfo").write_text("".join(CPUINFO.format(i=i, s=i % sockets) for i in range(4)))
    (root / "meminfo").write_text(f"MemTotal:       {mem_kb} kB\nMemFree:        1000 kB\n")
    return root


def test_cpu_power_is_utilisation_times_tdp_times_sockets(tmp_path: Path) -> None:
    proc = _proc(tmp_path / "proc", busy=1000, idle=1000)
    src = EstimateSource(proc_root=proc, clock=ManualClock())
    status = src.probe()
    assert status.available and status.estimated
    assert "185 W TDP (Intel(R) Xeon(R) Gold 6426Y in the TDP table)" in status.reason
    assert "2 socket(s)" in status.reason
    _proc(proc, busy=1000 + 300, idle=1000 + 100)  # 75 % busy since the probe
    readings = {r.component: r for r in src.read()}
    assert readings[Component.CPU].power_w == pytest.approx(0.75 * 185.0 * 2)
    assert readings[Component.DRAM].power_w == pytest.approx(64 * DRAM_W_PER_GIB)
    assert all(r.source == "estimate" for r in readings.values())


def test_tdp_option_and_default(tmp_path: Path) -> None:
    proc = _proc(tmp_path / "proc", busy=0, idle=10, sockets=1)
    assert EstimateSource([Component.CPU], cpu_tdp_w=250.0, proc_root=proc).probe().reason.count("250 W") == 1
    # a virtual machine that shows 2 cores of a part the table does not know: watts per core, not a
    # whole socket's TDP for two cores
    (proc / "cpuinfo").write_text(
        "".join(
            f"processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Processor\nphysical id\t: 0\n"
            "cpu cores\t: 2\n\n"
            for i in range(2)
        )
    )
    src = EstimateSource([Component.CPU], proc_root=proc)
    reason = src.probe().reason
    assert src.tdp_w == DEFAULT_W_PER_CORE * 2 and src.sockets == 1
    assert "not in the TDP table" in reason and "--cpu-tdp-w sets it" in reason
    # no "cpu cores" line (some ARM machines): one core per listed processor
    (proc / "cpuinfo").write_text("processor\t: 0\n\nprocessor\t: 1\n\nprocessor\t: 2\n\n")
    src = EstimateSource([Component.CPU], proc_root=proc)
    src.probe()
    assert src.tdp_w == DEFAULT_W_PER_CORE * 3


def test_table_matches_whole_model_names() -> None:
    assert tdp_for_model("Intel(R) Xeon(R) Platinum 8480+") == 350.0
    assert tdp_for_model("AMD EPYC 7763 64-Core Processor") == 280.0
    assert tdp_for_model("AMD EPYC 77630") is None


def test_nothing_to_estimate_when_all_measured() -> None:
    assert not EstimateSource([]).probe().available

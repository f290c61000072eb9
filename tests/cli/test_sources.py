"""`joulebench sources` in a subprocess, on this machine and against fakes; in this process against a fake
NVML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from joulebench.measurement.ipmi_fake import write_ipmitool
from joulebench.measurement.nvml import NvmlSource
from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml
from joulebench.measurement.rapl_fake import FakePowercap


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args], capture_output=True, text=True, env=env, timeout=60
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.setdefault("JOULEBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    env.setdefault("JOULEBENCH_IPMITOOL", str(tmp_path / "no-ipmitool"))
    env.update(extra)
    return env


def test_lists_every_source_with_a_reason_and_a_fix(tmp_path: Path) -> None:
    proc = _run(["sources", "--json"], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    statuses = json.loads(proc.stdout)
    assert [s["name"] for s in statuses] == ["nvml", "amdsmi", "rapl", "ipmi", "estimate"]
    assert all(s["reason"] for s in statuses)
    # nothing measured: the estimate stands in (by default), and each measured source says its fix
    assert [s["name"] for s in statuses if s["available"]] == ["estimate"]
    fixes = {s["name"]: s["fix"] for s in statuses if "fix" in s}
    assert fixes["rapl"]["commands"][0] == "modprobe intel_rapl_msr"
    assert fixes["amdsmi"]["why"].startswith("only where this machine has an AMD GPU")
    proc = _run(["sources", "--json", "--no-estimate"], _env(tmp_path))
    assert not any(s["available"] for s in json.loads(proc.stdout))


def test_fix_prints_one_script_that_a_shell_accepts(tmp_path: Path) -> None:
    powercap = FakePowercap(tmp_path / "powercap")
    powercap.make_unreadable("package-0")
    env = _env(tmp_path, JOULEBENCH_POWERCAP_ROOT=str(tmp_path / "powercap"))
    proc = _run(["sources", "--fix"], env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("#!/bin/sh\n")
    if os.geteuid() != 0:  # root reads the root-only file: nothing to fix there
        assert f"chmod g+r {tmp_path / 'powercap'}/intel-rapl:*/energy_uj" in text
        assert "/etc/udev/rules.d/99-joulebench-rapl.rules" in text
    assert "# nvml: " in text  # no command can install a driver: said, as a comment
    script = tmp_path / "fix.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0


def test_fakes_are_found_and_described(tmp_path: Path) -> None:
    FakePowercap(tmp_path / "powercap")
    tool = write_ipmitool(tmp_path / "bin", "supermicro", watts=420)
    env = _env(tmp_path, JOULEBENCH_POWERCAP_ROOT=str(tmp_path / "powercap"), JOULEBENCH_IPMITOOL=str(tool))
    proc = _run(["sources", "--estimate"], env)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "available" in lines["rapl"].split()[1] and "2 package zones, 2 dram zones, psys" in lines["rapl"]
    assert lines["ipmi"].split()[1] == "available" and "420 W" in lines["ipmi"]
    assert lines["nvml"].split()[1] == "unavailable"
    assert "nothing to estimate" in lines["estimate"]  # CPU and DRAM are measured here


def _fake_nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *gpus: FakeGpu) -> None:
    """`sources` in this process, with NVML the fake at the pynvml seam (no GPU here)."""
    from joulebench.measurement import detect

    real = detect.make_source
    fake = FakeNvml(list(gpus))

    def make_source(name: str, **kwargs: Any) -> Any:
        return NvmlSource(fake, visible_devices="0,1") if name == "nvml" else real(name, **kwargs)

    monkeypatch.setattr(detect, "make_source", make_source)
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)


def test_each_gpu_shows_its_load_now_and_another_process_on_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from joulebench.cli.sources import sources

    _fake_nvml(
        monkeypatch,
        tmp_path,
        FakeGpu(utilization_pct=0.0, memory_used_mib=512),
        FakeGpu(utilization_pct=89.0, memory_used_mib=57_673, memory_total_mib=143_771),
    )
    sources(as_json=False, estimate=False, fix=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["nvml", "available"]
    assert lines[1].split() == ["gpu0:", "0", "%", "busy,", "512", "of", "81,559", "MiB", "in", "use"]
    assert lines[2].strip().startswith("gpu1: 89 % busy, 57,673 of 143,771 MiB in use; another process")
    sources(as_json=True, estimate=False, fix=False)
    (nvml, *_) = json.loads(capsys.readouterr().out)
    assert nvml["devices_now"] == {
        "gpu0": {"utilization_pct": 0.0, "memory_used_mib": 512, "memory_total_mib": 81_559},
        "gpu1": {"utilization_pct": 89.0, "memory_used_mib": 57_673, "memory_total_mib": 143_771},
    }

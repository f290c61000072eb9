"""`joulebench sources` in a subprocess, on this machine and against fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from joulebench.measurement.ipmi_fake import write_ipmitool
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


def test_lists_every_source_with_a_reason(tmp_path: Path) -> None:
    proc = _run(["sources", "--json"], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    statuses = json.loads(proc.stdout)
    assert [s["name"] for s in statuses] == ["nvml", "rapl", "ipmi", "estimate"]
    assert all(s["reason"] for s in statuses)
    assert not any(s["available"] for s in statuses)


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

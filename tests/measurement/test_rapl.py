"""RAPL through a fake powercap tree: zones, wraparound, the polling bound, an unreadable zone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from joulebench.measurement.accounting import compute_window
from joulebench.measurement.fixes import POWER_GROUP, rapl_permission
from joulebench.measurement.nvml_fake import ManualClock
from joulebench.measurement.rapl import RaplSource, discover_zones, safe_interval_s
from joulebench.measurement.rapl_fake import FakePowercap
from joulebench.measurement.records import Component
from joulebench.measurement.series import ReadingLog


def test_zones_are_packages_dram_and_psys_only(tmp_path: Path) -> None:
    FakePowercap(tmp_path)
    zones = {(z.component, z.device, z.path.name) for z in discover_zones(tmp_path)}
    assert zones == {
        (Component.CPU, "package-0", "intel-rapl:0"),
        (Component.CPU, "package-1", "intel-rapl:1"),
        (Component.DRAM, "package-0", "intel-rapl:0:2"),
        (Component.DRAM, "package-1", "intel-rapl:1:2"),
        (Component.PLATFORM, "psys", "intel-rapl:2"),
    }  # core, uncore and the intel-rapl-mmio mirror are never read


def test_cpu_energy_sums_packages_and_never_adds_core_or_psys(tmp_path: Path) -> None:
    pc = FakePowercap(tmp_path)
    clock = ManualClock()
    src = RaplSource(tmp_path, clock=clock)
    assert src.probe().available
    log = ReadingLog()
    for meta in src.source_metas():
        log.add_source(meta)
    for _ in range(11):  # 1 s at 100 ms
        log.add(src.read())
        for key, watts in {
            "package-0": 60,
            "package-1": 40,
            "core-0": 35,
            "dram-0": 4,
            "dram-1": 3,
            "psys": 150,
        }.items():
            pc.add_energy(key, watts * 0.1)
        clock.advance(0.1)
    log.add(src.read())
    result = compute_window(log, "w", 1000.0, 1001.0)
    cpu = result.energy_j(Component.CPU)
    assert cpu == pytest.approx(100.0)  # 60 + 40 W for 1 s: core's 35 W is inside package-0, not added
    assert result.energy_j(Component.DRAM) == pytest.approx(7.0)
    assert result.energy_j(Component.PLATFORM) == pytest.approx(150.0)
    assert all(c.component is not Component.OTHER for c in result.components)  # no node: no OTHER


def test_wrap_inside_a_window_is_unwrapped(tmp_path: Path) -> None:
    max_range = 300_000_000  # 300 J: the counter wraps every 3 s at 100 W
    pc = FakePowercap(tmp_path, sockets=1, psys=False, max_range_uj=max_range, start_uj=250_000_000)
    clock = ManualClock()
    src = RaplSource(tmp_path, clock=clock)
    src.probe()
    log = ReadingLog()
    raws = []
    for _ in range(21):  # 2 s at 100 W: passes 300 J at 0.5 s
        log.add(src.read())
        raws.append(pc.energy_uj("package-0"))
        pc.add_energy("package-0", 10.0)
        clock.advance(0.1)
    assert min(raws) < 250_000_000  # the raw counter did wrap inside the window
    assert src.wraps == 1
    result = compute_window(log, "w", 1000.0, 1002.0)
    assert result.energy_j(Component.CPU, "package-0") == pytest.approx(200.0)


def test_polling_interval_is_short_enough_to_see_every_wrap(tmp_path: Path) -> None:
    assert safe_interval_s(262_143_328_850) == pytest.approx(131.07, rel=1e-3)  # 262 kJ at 1 kW, halved
    FakePowercap(tmp_path, max_range_uj=100_000_000)  # 100 J: wraps in 0.1 s at 1 kW
    src = RaplSource(tmp_path, interval_s=0.1)
    src.probe()
    assert src.interval_s == pytest.approx(0.05)


READER = """
import sys, time
path, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
print("reading", flush=True)
while time.monotonic() < until:
    with open(path) as f:
        print(time.monotonic(), f.read().strip(), flush=True)
    time.sleep(0.01)
"""


def test_running_counters_advance_while_this_process_is_stalled(tmp_path: Path) -> None:
    """Hardware counts on whatever the processes around it do: while this process holds its GIL (as a
    garbage collection of a large heap does), another process still sees the counter rise."""
    pc = FakePowercap(tmp_path)
    with pc.running({"psys": 100.0}):
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(pc.zones["psys"] / "energy_uj"), "1.2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
        time.sleep(0.2)
        stall_from = time.monotonic()
        sum(range(30_000_000))  # one C call: no other thread of this process runs until it returns
        stall_to = time.monotonic()
        out, _ = reader.communicate(timeout=30)
    readings = [(float(t), int(v)) for t, v in (line.split() for line in out.splitlines())]
    changes = [t for (t, v), (_, before) in zip(readings[1:], readings, strict=False) if v != before]
    during = [t for t in changes if stall_from <= t <= stall_to]
    assert stall_to - stall_from > 0.15
    # the counter kept rising through the stall: no gap between its changes near the stall's length
    gaps = [b - a for a, b in zip([stall_from, *during], [*during, stall_to], strict=True)]
    assert max(gaps) < 0.5 * (stall_to - stall_from), (gaps, stall_to - stall_from)


def test_no_powercap_tree_is_unavailable(tmp_path: Path) -> None:
    status = RaplSource(tmp_path / "missing").probe()
    assert not status.available and "no powercap tree" in status.reason


# Imports first, then (when root, which reads anything) become an ordinary user, as joulebench runs.
_PROBE = """
import os
from joulebench.measurement.rapl import RaplSource
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
s = RaplSource({root!r}).probe()
print(s.available)
print(s.reason)
print(s.fix.line() if s.fix else "")
"""


def test_root_only_energy_file_makes_the_source_unavailable_with_a_fix() -> None:
    # tmp_path is private to the test user: build where an unprivileged user can look
    root = Path(tempfile.mkdtemp(prefix="joulebench-powercap-"))
    try:
        os.chmod(root, 0o755)
        pc = FakePowercap(root / "powercap")
        pc.make_unreadable("package-1")
        code = _PROBE.format(root=str(root / "powercap"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        available, reason, fix = out.splitlines()[:3]
        assert available == "False"
        assert "intel-rapl:1/energy_uj is not readable" in reason
        assert "CVE-2020-8694" in fix and "udev" in fix
        if os.geteuid() == 0:
            # the fix's own file commands, with the group the unprivileged probe runs in (no groupadd or
            # udev rule on the test machine), make the tree readable
            for command in rapl_permission(str(root / "powercap")).commands:
                if command.startswith(("chgrp", "chmod")):
                    command = command.replace(f"chgrp {POWER_GROUP} ", "chgrp 65534 ")
                    subprocess.run(["sh", "-c", command], check=True)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            assert out.stdout.splitlines()[0] == "True", out.stdout
    finally:
        shutil.rmtree(root)

"""`joulebench measure` in subprocesses, with a fake powercap tree and ipmitool stand-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from joulebench.measurement.ipmi_fake import write_ipmitool
from joulebench.measurement.rapl_fake import FakePowercap, schedule_energy_j

CHILD = textwrap.dedent(
    """
    import time, joulebench
    with joulebench.stage("load"):
        time.sleep(0.4)
    with joulebench.stage("generate"):
        time.sleep(0.4)
    raise SystemExit(3)
    """
)


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env["JOULEBENCH_POWERCAP_ROOT"] = str(tmp_path / "no-powercap")
    env["JOULEBENCH_IPMITOOL"] = str(tmp_path / "no-ipmitool")
    env.update(extra)
    return env


def _total(doc: dict, component: str) -> dict:
    return next(c for c in doc["total"]["components"] if c["component"] == component and c["device"] == "all")


def test_measures_a_child_with_stages_rapl_and_ipmi(tmp_path: Path) -> None:
    pc = FakePowercap(tmp_path / "powercap")
    tool = write_ipmitool(tmp_path / "bin", "dell", watts=400)
    env = _env(tmp_path, JOULEBENCH_POWERCAP_ROOT=str(tmp_path / "powercap"), JOULEBENCH_IPMITOOL=str(tool))
    trace = tmp_path / "run.jsonl.gz"
    with pc.running({"package-0": 60.0, "package-1": 40.0, "dram-0": 5.0, "dram-1": 5.0, "psys": 160.0}):
        proc = _run(["measure", "--json", "--trace", str(trace), "--", sys.executable, "-c", CHILD], env)
    assert proc.returncode == 3, proc.stderr  # the child's exit code
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "joulebench.measure/1" and doc["exit_code"] == 3
    duration = doc["duration_s"]
    assert 0.8 < duration < 10
    cpu, dram, node, other = (_total(doc, c) for c in ("cpu", "dram", "node", "other"))
    assert cpu["energy_j"] == pytest.approx(100.0 * duration, rel=0.1) and cpu["method"] == "counter"
    assert dram["energy_j"] == pytest.approx(10.0 * duration, rel=0.15)
    assert node["energy_j"] == pytest.approx(400.0 * duration, rel=0.05) and node["method"] == "integrated"
    assert other["method"] == "derived"
    assert other["energy_j"] == pytest.approx(node["energy_j"] - cpu["energy_j"] - dram["energy_j"])
    assert "includes-gpu" in other["flags"]
    platform = _total(doc, "platform")
    assert platform["energy_j"] == pytest.approx(160.0 * duration, rel=0.1)  # psys: reported, never summed
    stages = {s["name"]: s for s in doc["stages"]}
    assert set(stages) == {"load", "generate"}
    for s in stages.values():
        assert s["duration_s"] == pytest.approx(0.4, abs=0.1)
        assert all(
            set(c) >= {"energy_j", "duration_s", "avg_power_w", "method", "flags"} for c in s["components"]
        )
    assert trace.is_file() and doc["trace"] == str(trace)

    # the trace replays into the same numbers
    replay = _run(["measure", "--json", "--replay", str(trace)], env)
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    assert again["total"] == doc["total"] and again["stages"] == doc["stages"]


WAIT_UNTIL = "import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.monotonic()))"


def test_counters_that_step_every_250_ms_and_then_hold_give_the_energy_that_went_in(tmp_path: Path) -> None:
    """Linux's powercap layout (two packages, their dram subzones, psys, counters wrapping at 30 J), every
    counter stepping every 250 ms and holding still for the last 0.75 s of the command: the old rule
    extrapolated the last slope over the hold (CPU 39.0 J for 31.2 J, psys +25 %), unflagged."""
    pc = FakePowercap(tmp_path / "powercap", max_range_uj=30_000_000)
    env = _env(tmp_path, JOULEBENCH_POWERCAP_ROOT=str(tmp_path / "powercap"))
    load = {"package-0": 9.0, "package-1": 6.0, "dram-0": 2.5, "dram-1": 1.5, "psys": 30.0}
    hold_from, stop_at = 4.25, 5.0  # seconds after the ticker's start: the command's last 0.75 s hold
    schedules = {zone: [(0.0, watts), (hold_from, 0.0)] for zone, watts in load.items()}
    with pc.running(schedules, tick_s=0.25) as start:
        proc = _run(["measure", "--json", "--", sys.executable, "-c", WAIT_UNTIL, repr(start + stop_at)], env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    a, b = doc["total"]["start_s"] - start, doc["total"]["end_s"] - start
    assert a < hold_from - 1.0, "measure started too late for the load to be measured"
    assert b >= stop_at

    def truth(zones: list[str]) -> float:
        return sum(schedule_energy_j(schedules[z], a, b) for z in zones)

    for component, zones in (
        ("cpu", ["package-0", "package-1"]),
        ("dram", ["dram-0", "dram-1"]),
        ("platform", ["psys"]),
    ):
        row = _total(doc, component)
        true_j = truth(zones)
        assert abs(row["energy_j"] - true_j) <= row["uncertainty_j"], (component, row, true_j)
        # two counter periods at each edge at most, at the stated maximum power; the load's own edge
        # lies inside the window and costs nothing
        assert row["uncertainty_j"] < 0.1 * true_j + 2 * 1000.0 * 0.6, (component, row)
        # what went in, not the last slope carried over the hold
        assert row["energy_j"] < true_j * 1.05, (component, row["energy_j"], true_j)
    assert not any("counter-reset" in c["flags"] for c in doc["total"]["components"])


def test_text_report_on_a_machine_without_sources(tmp_path: Path) -> None:
    proc = _run(["measure", "--", sys.executable, "-c", "print('child output')"], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child output\n"  # the report goes to stderr, like time(1)
    assert "exited with 0 after" in proc.stderr
    # estimated by default, labelled, with what would measure it instead
    assert "  estimate  available   estimated: CPU = utilisation x" in proc.stderr
    assert "to measure instead of estimate: no powercap RAPL tree" in proc.stderr
    assert "modprobe intel_rapl_msr" in proc.stderr
    energy = proc.stderr.split("energy (", 1)[1]
    assert all("estimated" in line for line in energy.splitlines()[2:] if line.split()[0] in ("cpu", "dram"))
    for name in ("nvml", "rapl", "ipmi"):
        assert f"  {name}" in proc.stderr
    proc = _run(
        ["measure", "--no-estimate", "--", sys.executable, "-c", "print('child output')"], _env(tmp_path)
    )
    assert "no source available: only the duration is measured" in proc.stderr


def test_estimate_is_labelled_everywhere(tmp_path: Path) -> None:
    code = "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"
    proc = _run(
        ["measure", "--json", "--estimate", "--cpu-tdp-w", "120", "--", sys.executable, "-c", code],
        _env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    cpu = _total(doc, "cpu")
    assert cpu["estimated"] is True and cpu["method"] == "estimated" and "estimated" in cpu["flags"]
    assert 0 < cpu["avg_power_w"] <= 120.0 * os.cpu_count()  # type: ignore[operator]
    est = next(s for s in doc["sources"] if s["name"] == "estimate")
    assert est["available"] and est["estimated"] and "120 W TDP (--cpu-tdp-w)" in est["reason"]


def test_stage_file_protocol_from_a_shell_child(tmp_path: Path) -> None:
    script = 'f="$JOULEBENCH_STAGE_FILE"; echo "begin fetch" >> "$f"; sleep 0.3; echo "end fetch" >> "$f"'
    proc = _run(["measure", "--json", "--", "sh", "-c", script], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (stage,) = json.loads(proc.stdout)["stages"]
    assert stage["name"] == "fetch" and stage["duration_s"] == pytest.approx(0.3, abs=0.2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["measure"], "no command given"),
        (["measure", "--interval-ms", "-5", "--", "true"], "--interval-ms must be positive"),
        (["measure", "--bogus", "--", "true"], "No such option"),
        (["measure", "--source", "nope", "--", "true"], "unknown source 'nope'"),
        (["measure", "--replay", "/nonexistent/trace.jsonl"], "cannot read trace"),
        (["measure", "--trace", "out.txt", "--", "true"], "must end in"),
        (["measure", "--", "definitely-not-a-command-xyz"], "command not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _run(args, _env(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["measure", "--interval-ms", "inf", "--", "true"], "--interval-ms must be positive"),
        (["measure", "--gpu-power-interval-ms", "nan", "--", "true"], "--gpu-power-interval-ms must be"),
        (["measure", "--cpu-tdp-w", "inf", "--estimate", "--", "true"], "--cpu-tdp-w must be"),
    ],
)
def test_non_finite_numbers_are_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _run(args, _env(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unwritable_output_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    (tmp_path / "out.json").mkdir()
    for option in (["-o", str(tmp_path / "out.json")], ["--trace", str(tmp_path / "no" / "t.jsonl")]):
        proc = _run(["measure", *option, "--", "touch", str(ran)], _env(tmp_path))
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not ran.exists()  # refused before anything ran


def test_a_trace_that_cannot_be_written_never_loses_the_result(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    (tmp_path / "run.jsonl.partial").mkdir()  # the trace's temporary file cannot be created
    proc = _run(["measure", "--json", "--trace", str(trace), "--", "sh", "-c", "exit 5"], _env(tmp_path))
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 5 and doc["trace"] is None
    assert any("trace not written" in w for w in doc["warnings"])


def test_a_report_file_that_cannot_be_written_is_printed_instead(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = _run(
        ["measure", "--json", "-o", str(out), "--", "sh", "-c", f"mkdir {out}; exit 4"], _env(tmp_path)
    )
    assert proc.returncode == 4, proc.stderr  # still the command's exit code
    assert f"cannot write {out}" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 4

"""The Monitor end to end, sampling in real time from the fakes (no GPU, RAPL or BMC needed)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import joulebench
from joulebench.errors import UsageError
from joulebench.measurement.markers import STAGE_FILE_ENV
from joulebench.measurement.monitor import Monitor
from joulebench.measurement.nvml import NvmlSource
from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml
from joulebench.measurement.rapl import RaplSource
from joulebench.measurement.rapl_fake import FakePowercap
from joulebench.measurement.records import Component
from joulebench.measurement.source import PowerSource


def _gpu_monitor(watts: float = 200.0, **kwargs: object) -> tuple[Monitor, FakeNvml]:
    fake = FakeNvml([FakeGpu(power_w=watts), FakeGpu(power_w=watts / 2)])
    return Monitor([NvmlSource(fake)], **kwargs), fake  # type: ignore[arg-type]


def test_nested_and_overlapping_stages_span_and_window() -> None:
    mon, _ = _gpu_monitor()
    with mon:
        with mon.stage("outer"):
            time.sleep(0.3)
            mon.begin("overlap")
            with mon.stage("inner"):
                time.sleep(0.3)
        time.sleep(0.2)
        mon.end("overlap")
        mon.span("after_the_fact", mon.start_s + 0.1, mon.start_s + 0.5)  # type: ignore[operator]
    results = {r.name: r for r in mon.stages()}
    assert list(results) == ["inner", "outer", "overlap", "after_the_fact"]
    for r in results.values():
        gpu = r.energy_j(Component.GPU)
        assert gpu == pytest.approx(300.0 * r.duration_s, rel=0.03)  # 200 W + 100 W
        devices = {c.device for c in r.components}
        assert devices == {"gpu0", "gpu1", "all"}
    a, b = mon.start_s + 0.2, mon.start_s + 0.6  # type: ignore[operator]
    assert mon.window("custom", a, b).energy_j(Component.GPU, "gpu1") == pytest.approx(40.0, rel=0.05)


def test_measure_idle_then_above_idle_energy() -> None:
    # the step comes after start-up (which measures the counter's period, about 0.5 s) and the baseline
    fake = FakeNvml([FakeGpu(power_w=[(0.0, 60.0), (1.6, 260.0)]), FakeGpu(power_w=30.0)])
    with Monitor([NvmlSource(fake)]) as mon:
        idle = mon.measure_idle(0.4)
        assert time.monotonic() < fake.start_s + 1.5, "the baseline ran into the load"
        assert idle[(Component.GPU, "gpu0")] == pytest.approx(60.0, rel=0.05)
        assert idle[(Component.GPU, "all")] == pytest.approx(90.0, rel=0.05)
        time.sleep(max(fake.start_s + 1.7 - time.monotonic(), 0.0))  # past the step to 260 W
        with mon.stage("load"):
            time.sleep(0.5)
    row = next(c for c in mon.stages()[0].components if c.device == "gpu0")
    assert row.idle_power_w == pytest.approx(60.0, rel=0.05)
    assert row.above_idle_energy_j == pytest.approx(200.0 * row.duration_s, rel=0.1)


def test_measure_idle_keeps_the_highest_utilization_it_read() -> None:
    # another process's kernels start 0.3 s into the baseline on gpu0; gpu1 stays idle
    fake = FakeNvml([FakeGpu(utilization_pct=[(0.0, 0.0), (0.3, 89.0)]), FakeGpu(utilization_pct=1.0)])
    with Monitor([NvmlSource(fake)]) as mon:
        assert mon.idle_utilization_pct == {}
        mon.measure_idle(1.0)
    assert mon.idle_utilization_pct == {"gpu0": 89.0, "gpu1": 1.0}
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 2 * 2  # every 0.5 s, each GPU


def test_stage_api_in_process_and_unfinished_stage_at_stop() -> None:
    mon, _ = _gpu_monitor()
    mon.start()
    with joulebench.stage("via_package"):
        time.sleep(0.15)
    mon.begin("never_ended")
    time.sleep(0.1)
    mon.stop()
    names = {r.name: r for r in mon.stages()}
    assert names["via_package"].energy_j(Component.GPU) == pytest.approx(45.0, rel=0.1)
    assert all("unfinished" in c.flags for c in names["never_ended"].components)
    with joulebench.stage("after_stop"):  # no active monitor, no stage file: a no-op
        pass
    assert "after_stop" not in {r.name for r in mon.stages()}


def test_bad_marks_are_usage_errors() -> None:
    mon, _ = _gpu_monitor()
    with pytest.raises(UsageError):
        mon.end("never_begun")
    mon.begin("x", 10.0)
    with pytest.raises(UsageError):
        mon.begin("x")
    with pytest.raises(UsageError):
        mon.end("x", 9.0)
    with pytest.raises(UsageError):
        mon.begin("two words")
    with pytest.raises(UsageError):
        mon.span("y", 5.0, 4.0)
    with pytest.raises(UsageError):
        Monitor([], interval_s=-1)


def test_follows_a_stage_file_written_by_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_file = tmp_path / "stages"
    mon, _ = _gpu_monitor()
    with mon:
        mon.follow_stage_file(stage_file)
        monkeypatch.setenv(STAGE_FILE_ENV, str(stage_file))
        with joulebench.stage("in_process"):  # recorded once: not also written to the file it follows
            time.sleep(0.2)
        t = time.monotonic()
        with stage_file.open("a") as fh:
            fh.write(f"begin by_hand mono={t - 0.3}\nend by_hand mono={t - 0.1}\n# a comment\nbogus line\n")
        time.sleep(0.25)
    names = [r.name for r in mon.stages()]
    assert names.count("in_process") == 1
    assert "by_hand" in names
    assert "in_process" not in stage_file.read_text()
    (error,) = mon.stage_file_errors()
    assert "bogus line" in error


def test_rapl_and_gpu_together_live(tmp_path: Path) -> None:
    pc = FakePowercap(tmp_path)
    fake = FakeNvml([FakeGpu(power_w=300.0)])
    running = pc.running({"package-0": 70.0, "package-1": 50.0, "dram-0": 6.0, "dram-1": 4.0})
    with running, Monitor([NvmlSource(fake), RaplSource(tmp_path)]) as mon:
        with mon.stage("work"):
            time.sleep(0.6)
        live = mon.latest_power_w()
    result = mon.stages()[0]
    assert result.energy_j(Component.CPU) == pytest.approx(120.0 * result.duration_s, rel=0.1)
    assert result.energy_j(Component.DRAM) == pytest.approx(10.0 * result.duration_s, rel=0.15)
    assert result.energy_j(Component.GPU) == pytest.approx(300.0 * result.duration_s, rel=0.05)
    assert live["gpu"] == pytest.approx(300.0)
    assert live["cpu"] == pytest.approx(120.0, rel=0.3)
    info = mon.device_info()
    assert {d.source for d in info["start"]} == {"nvml", "rapl"} and len(info["end"]) == len(info["start"])
    assert [s.name for s in mon.statuses()] == ["nvml", "rapl"]


def test_auto_detection_on_a_bare_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOULEBENCH_POWERCAP_ROOT", str(tmp_path / "none"))
    monkeypatch.setenv("JOULEBENCH_IPMITOOL", str(tmp_path / "no-ipmitool"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hides any GPU the test machine may have
    with Monitor(estimate=True) as mon, mon.stage("x"):
        time.sleep(0.3)
    statuses = {s.name: s for s in mon.statuses()}
    assert not statuses["nvml"].available and not statuses["rapl"].available
    assert not statuses["ipmi"].available
    assert statuses["estimate"].available and statuses["estimate"].estimated
    rows = [c for c in mon.stages()[0].components if c.device == "all"]
    assert {c.component for c in rows} == {Component.CPU, Component.DRAM}
    assert all(c.estimated and c.energy_j is not None and c.energy_j >= 0 for c in rows)


def test_read_errors_are_counted_in_the_status_not_raised() -> None:
    class Flaky(FakeNvml):
        def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # type: ignore[no-untyped-def]
            if self.calls.get("nvmlDeviceGetTotalEnergyConsumption", 0) > 3:
                import pynvml

                self.calls["nvmlDeviceGetTotalEnergyConsumption"] += 1
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            return super().nvmlDeviceGetTotalEnergyConsumption(handle)

    with Monitor([NvmlSource(Flaky([FakeGpu()]))], interval_s=0.05) as mon:
        time.sleep(0.3)
    (status,) = mon.statuses()
    assert "read error" in status.reason and "GPU is lost" in status.reason


def test_a_sampler_with_nothing_to_poll_sleeps_instead_of_spinning() -> None:
    # the sampler runs inside the windows it measures: an idle loop that spins would be its own load
    from joulebench.measurement.sampler import Sampler
    from joulebench.measurement.series import ReadingLog

    sampler = Sampler([], ReadingLog())
    before = time.process_time()
    sampler.start()
    time.sleep(0.5)
    sampler.stop()
    assert time.process_time() - before < 0.1


def test_a_paused_monitor_reads_nothing_and_measures_again_after_resume() -> None:
    mon, _ = _gpu_monitor()
    with mon:
        time.sleep(0.3)
        mon.pause()
        paused_at = time.monotonic()
        cpu_before = time.process_time()
        time.sleep(0.5)
        cpu_paused = time.process_time() - cpu_before
        resumed_at = time.monotonic()
        mon.resume()  # returns once the counters moved again
        time.sleep(0.4)
        end = time.monotonic()
        inside = [r for r in mon.readings(paused_at + 0.05, resumed_at - 0.01)]
        after = mon.window("after", resumed_at + 0.05, end)
        across = mon.window("across", paused_at - 0.2, end)
    assert inside == []  # nothing sampled while paused
    assert cpu_paused < 0.05  # and nothing spun
    assert after.energy_j(Component.GPU) == pytest.approx(300.0 * after.duration_s, rel=0.05)
    assert all("monitor-paused" not in c.flags for c in after.components)
    assert all("monitor-paused" in c.flags for c in across.components)  # interpolated over the pause


def _climbing_estimate(tmp_path: Path) -> tuple[PowerSource, Callable[[int], None], Component, str]:
    """The CPU estimate over a /proc/stat whose busy share is ``step`` % (written whole: a reader never
    sees half a file)."""
    from joulebench.measurement.estimate import EstimateSource

    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU\n\n")
    (proc / "meminfo").write_text("MemTotal:       1048576 kB\n")
    (proc / "stat").write_text("cpu  0 0 0 1 0 0 0 0 0 0\n")
    jiffies = [0, 1]

    def climb(step: int) -> None:
        jiffies[0] += min(step, 100)
        jiffies[1] += 100 - min(step, 100)
        (proc / "stat.new").write_text(f"cpu  {jiffies[0]} 0 0 {jiffies[1]} 0 0 0 0 0 0\n")
        os.replace(proc / "stat.new", proc / "stat")

    source = EstimateSource([Component.CPU], cpu_tdp_w=100.0, interval_s=0.3, proc_root=proc)
    return source, climb, Component.CPU, "host"


def _climbing_bmc(tmp_path: Path) -> tuple[PowerSource, Callable[[int], None], Component, str]:
    """ipmitool (a stand-in printing a Dell BMC's output, run as a subprocess in its own thread) whose
    node power is 200 W plus ``step`` W."""
    from joulebench.measurement.ipmi import IpmiSource
    from joulebench.measurement.ipmi_fake import set_watts, write_ipmitool

    tool = write_ipmitool(tmp_path, "dell", 200.0)
    source = IpmiSource(str(tool), interval_s=0.3)
    return source, lambda step: set_watts(tool, 200.0 + step), Component.NODE, "node"


@pytest.mark.parametrize("make", [_climbing_estimate, _climbing_bmc], ids=["cpu-estimate", "ipmitool"])
def test_a_window_ending_now_waits_for_the_next_reading_of_a_source_without_a_counter(
    tmp_path: Path, make: Callable[[Path], tuple[PowerSource, Callable[[int], None], Component, str]]
) -> None:
    """A source with no counter, read every 0.3 s while its power climbs at every read. A window that ends
    between two reads waits for the next one, so its end is interpolated rather than the last reading held
    to it; computed again later, from the same readings a trace keeps, it gives the same energy."""
    source, climb, component, device = make(tmp_path)
    assert source.probe().available
    stop = threading.Event()

    def climbing() -> None:  # one step every 10 ms
        for step in range(10_000):
            if stop.wait(0.01):
                return
            climb(step)

    thread = threading.Thread(target=climbing, daemon=True)
    thread.start()
    try:
        with Monitor([source]) as mon:
            time.sleep(0.45)  # half-way between two reads
            end = time.monotonic()
            first = mon.window("w", end - 0.4, end)
            latest = max(r.t_s for r in mon.readings() if r.component is component)
            time.sleep(0.7)
            later = mon.window("w", end - 0.4, end)
    finally:
        stop.set()
        thread.join()
    assert latest >= end  # it waited for a reading past the window's end
    energy = first.energy_j(component, device)
    assert energy is not None and energy > 0
    assert energy == later.energy_j(component, device)

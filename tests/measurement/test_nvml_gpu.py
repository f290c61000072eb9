"""The NVML adapter against a real GPU (run on a GPU machine; skipped elsewhere)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from joulebench.measurement.monitor import Monitor
from joulebench.measurement.nvml import NvmlSource
from joulebench.measurement.occupancy import BUSY_PCT
from joulebench.measurement.records import Component, Method

pytestmark = pytest.mark.gpu


def test_real_gpu_counter_window_and_device_facts() -> None:
    with Monitor([NvmlSource(gpu_indices=[0])]) as mon, mon.stage("idle"):
        time.sleep(1.0)
    (status,) = mon.statuses()
    assert status.available and "gpu0" in status.devices
    row = next(c for c in mon.stages()[0].components if c.device == "gpu0")
    assert row.method is Method.COUNTER
    assert row.energy_j is not None and 5.0 < row.avg_power_w < 1500.0  # type: ignore[operator]
    assert row.peak_power_w is not None and row.peak_power_w >= row.avg_power_w * 0.5  # type: ignore[operator]
    start = {d.device: d for d in mon.device_info()["start"]}
    attrs = start["gpu0"].attributes
    assert attrs["driver"] and attrs["uuid"].startswith("GPU-")  # type: ignore[union-attr]
    assert attrs["power_limit_w"] and attrs["temperature_c"] is not None
    assert mon.latest_power_w()[Component.GPU.value] > 0


def test_real_power_read_is_cheap_and_counter_updates_about_every_100ms() -> None:
    src = NvmlSource(gpu_indices=[0])
    assert src.probe().available
    t0 = time.perf_counter()
    for _ in range(100):
        src.read_power()
    per_read_s = (time.perf_counter() - t0) / 100
    assert per_read_s < 0.002  # microseconds on H100; the counter read is the slow one (~ms)
    values, t_end = [], time.monotonic() + 1.0
    while time.monotonic() < t_end:
        values.append(src.read()[0].energy_j)
    src.close()
    changes = sum(1 for a, b in itertools.pairwise(values) if b != a)
    assert 5 <= changes <= 40  # ~10 updates in a second, far fewer than reads
    assert changes < len(values) / 2


def test_real_utilization_tells_a_busy_gpu_from_an_idle_one_during_the_baseline() -> None:
    torch = pytest.importorskip("torch")
    stop = threading.Event()

    def neighbour() -> None:  # matrix products back to back, as another process's batch would run
        a = torch.randn(4096, 4096, device="cuda")
        while not stop.is_set():
            a @ a
        torch.cuda.synchronize()

    with Monitor([NvmlSource(gpu_indices=[0])]) as mon:
        mon.measure_idle(1.5)
        quiet = mon.idle_utilization_pct["gpu0"]
        work = threading.Thread(target=neighbour)
        work.start()
        try:
            time.sleep(1.0)
            mon.measure_idle(1.5)
        finally:
            stop.set()
            work.join()
    busy = mon.idle_utilization_pct["gpu0"]
    print(f"utilisation during the baseline: idle {quiet} %, busy {busy} %")
    assert quiet < BUSY_PCT <= busy
    assert busy >= 50.0


def test_real_memory_in_use_is_read_in_mib() -> None:
    src = NvmlSource(gpu_indices=[0])
    assert src.probe().available
    used, total = src.memory_mib()["gpu0"]
    assert 70_000 < total < 200_000  # 80 GB to 141 GB cards, in MiB
    assert 0 <= used <= total
    (info,) = src.device_info()
    assert info.attributes["memory_used_mib"] == pytest.approx(used, abs=2_048)

"""The NVML adapter against the pynvml-seam fake: 100 ms counter updates, field values, old GPUs."""

from __future__ import annotations

import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joulebench.measurement.accounting import compute_window
from joulebench.measurement.nvml import NvmlSource, parse_visible_devices
from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml, ManualClock
from joulebench.measurement.records import Component, Method
from joulebench.measurement.series import ReadingLog

UUIDS = ["GPU-aaaa1111-0000", "GPU-bbbb2222-0000", "GPU-cccc3333-0000"]


def _drive(source: NvmlSource, clock: ManualClock, seconds: float, step_s: float = 0.02) -> ReadingLog:
    """What the sampler does: counter every 100 ms, power every 20 ms, on the fake's clock."""
    log = ReadingLog()
    for meta in source.source_metas():
        log.add_source(meta)
    t_end = clock() + seconds
    k = 0
    while clock() < t_end - 1e-9:
        if k % 5 == 0:
            log.add(source.read())
        log.add(source.read_power())
        clock.advance(step_s)
        k += 1
    log.add(source.read())
    return log


def test_counter_repeats_between_100ms_updates() -> None:
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power_w=250.0)], clock=clock)
    src = NvmlSource(fake, clock=clock)
    assert src.probe().available
    values = []
    for _ in range(10):
        values.append(src.read()[0].energy_j)
        clock.advance(0.02)
    assert len(set(values)) == 2  # 10 reads over 200 ms: the counter moved once, at the 100 ms update
    assert values[5] - values[0] == pytest.approx(25.0)  # 250 W x 100 ms


def test_window_energy_from_counter_matches_the_model() -> None:
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power_w=[(0.0, 100.0), (1.0, 400.0)])], clock=clock)
    src = NvmlSource(fake, clock=clock)
    src.probe()
    log = _drive(src, clock, 3.0)
    t0 = fake.start_s
    result = compute_window(log, "w", t0 + 0.5, t0 + 2.5)
    gpu0 = next(c for c in result.components if c.device == "gpu0")
    expected = fake.gpus[0].energy_between(0.5, 2.5)  # 50 + 600 = 650 J
    assert expected == pytest.approx(650.0)
    # each update lies between the read that saw it and the one before (100 ms here): placed midway, an
    # edge is off by at most half that gap of its power, and the stated bound holds it
    assert abs(gpu0.energy_j - expected) <= gpu0.uncertainty_j
    assert gpu0.energy_j == pytest.approx(expected, abs=0.05 * 100.0 + 0.05 * 400.0)
    assert gpu0.method is Method.COUNTER
    assert gpu0.peak_power_w == pytest.approx(400.0)


def test_old_gpu_without_counter_integrates_power_and_says_so() -> None:
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power_w=150.0, energy_counter=False, power_fields=False)], clock=clock)
    src = NvmlSource(fake, clock=clock)
    status = src.probe()
    assert status.available and "power integrated on 1" in status.reason
    log = _drive(src, clock, 3.0)
    t0 = fake.start_s
    row = next(c for c in compute_window(log, "w", t0 + 1.5, t0 + 2.5).components if c.device == "gpu0")
    assert row.method is Method.INTEGRATED
    assert "integrated-no-counter" in row.flags
    assert row.energy_j == pytest.approx(150.0)  # nvmlDeviceGetPowerUsage's 1 s average is flat by then
    info = src.device_info()[0]
    assert info.attributes["energy_counter"] is False and info.attributes["power_field"] == "usage"


def test_power_average_field_when_instant_is_missing() -> None:
    clock = ManualClock()

    class NoInstant(FakeNvml):
        def nvmlDeviceGetFieldValues(self, handle, fieldIds):  # type: ignore[no-untyped-def]
            values = super().nvmlDeviceGetFieldValues(handle, fieldIds)
            for v in values:
                if v.fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT:
                    v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            return values

    src = NvmlSource(NoInstant([FakeGpu(power_w=80.0)], clock=clock), clock=clock)
    assert src.probe().reason.endswith("power via average")
    clock.advance(2.0)
    assert src.read_power()[0].power_w == pytest.approx(80.0)


def test_no_driver_is_unavailable_with_a_reason() -> None:
    status = NvmlSource(FakeNvml([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)).probe()
    assert not status.available
    assert "Driver Not Loaded" in status.reason


def test_cuda_visible_devices_by_index_and_uuid() -> None:
    assert parse_visible_devices(None, UUIDS) == [0, 1, 2]
    assert parse_visible_devices("2,0", UUIDS) == [2, 0]
    assert parse_visible_devices("GPU-bbbb,cccc3333", UUIDS) == [1, 2]
    assert parse_visible_devices("1,7,0", UUIDS) == [1]  # CUDA stops at the first invalid entry
    assert parse_visible_devices("", UUIDS) == []
    assert parse_visible_devices("GPU-", UUIDS) == []  # ambiguous prefix


def test_visible_devices_are_named_in_cuda_order_and_mapped_by_uuid() -> None:
    fake = FakeNvml([FakeGpu(uuid=u, power_w=100.0 + i) for i, u in enumerate(UUIDS)])
    src = NvmlSource(fake, visible_devices="GPU-cccc,0")
    status = src.probe()
    assert status.devices == ("gpu0", "gpu1")
    infos = {d.device: d.attributes for d in src.device_info()}
    assert infos["gpu0"]["uuid"] == UUIDS[2] and infos["gpu0"]["nvml_index"] == 2
    assert infos["gpu1"]["uuid"] == UUIDS[0]
    powers = {r.device: r.power_w for r in src.read_power()}
    assert powers == {"gpu0": pytest.approx(102.0), "gpu1": pytest.approx(100.0)}
    src.close()
    assert fake.calls["nvmlShutdown"] == 1


def test_gpu_indices_select_and_validate() -> None:
    fake = FakeNvml([FakeGpu(uuid=u) for u in UUIDS])
    assert NvmlSource(fake, gpu_indices=[1], visible_devices=None).probe().devices == ("gpu1",)
    status = NvmlSource(FakeNvml([FakeGpu()]), gpu_indices=[3]).probe()
    assert not status.available and "index [3]" in status.reason


def test_device_info_records_name_driver_limit_clock_temperature() -> None:
    src = NvmlSource(FakeNvml([FakeGpu(power_limit_w=500.0, sm_clock_mhz=1755, temperature_c=41)]))
    src.probe()
    (info,) = src.device_info()
    assert info.component is Component.GPU and info.name == "NVIDIA H100 80GB HBM3"
    a = info.attributes
    assert (a["driver"], a["power_limit_w"], a["sm_clock_mhz"], a["temperature_c"]) == (
        "550.54.15",
        500.0,
        1755,
        41,
    )


def test_fake_refuses_calls_before_init_like_nvml() -> None:
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        FakeNvml([FakeGpu()]).nvmlDeviceGetCount()


def test_gpu_without_counter_is_sampled_at_the_power_interval_its_windows_are_flagged_against() -> None:
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power_w=150.0, energy_counter=False, power_fields=False)], clock=clock)
    src = NvmlSource(fake, clock=clock)
    assert src.probe().available
    clock.advance(2.0)
    assert [r.power_w for r in src.read_power()] == [pytest.approx(150.0)]  # the 20 ms path
    t0 = clock()
    log = _drive(src, clock, 3.0)
    timeline = log.channels[("nvml", Component.GPU, "gpu0")].power
    assert timeline is not None
    inside = [t for t in timeline.t_s if t0 + 1.0 <= t <= t0 + 2.0]
    assert len(inside) >= 45  # every 20 ms, not every 100 ms
    row = next(c for c in compute_window(log, "w", t0 + 1.5, t0 + 1.51).components if c.device == "gpu0")
    assert "shorter-than-sample-period" in row.flags


def test_utilization_follows_its_schedule_and_a_gpu_that_cannot_tell_is_left_out() -> None:
    clock = ManualClock()
    fake = FakeNvml(
        [FakeGpu(utilization_pct=[(0.0, 0.0), (1.0, 89.0)]), FakeGpu(utilization_supported=False)],
        clock=clock,
    )
    src = NvmlSource(fake, clock=clock)
    assert src.probe().available
    assert src.utilization_pct() == {"gpu0": 0.0}
    clock.advance(1.5)
    assert src.utilization_pct() == {"gpu0": 89.0}
    with pytest.raises(pynvml.NVMLError_NotSupported):  # as NVML answers for a MIG-partitioned GPU
        fake.nvmlDeviceGetUtilizationRates(fake.nvmlDeviceGetHandleByIndex(1))


def test_device_info_records_the_memory_in_use() -> None:
    fake = FakeNvml([FakeGpu(memory_used_mib=57_673)])
    src = NvmlSource(fake)
    src.probe()
    (info,) = src.device_info()
    assert info.attributes["memory_used_mib"] == 57_673
    assert src.memory_mib() == {"gpu0": (57_673, 81_559)}
    memory = fake.nvmlDeviceGetMemoryInfo(fake.nvmlDeviceGetHandleByIndex(0))
    assert (memory.total - memory.used, memory.free) == ((81_559 - 57_673) << 20, (81_559 - 57_673) << 20)


def _gpu0(log: ReadingLog, fake: FakeNvml, a: float, b: float):
    t0 = fake.start_s
    return next(c for c in compute_window(log, "w", t0 + a, t0 + b).components if c.device == "gpu0")


def test_a_counter_that_holds_after_the_load_is_not_carried_on() -> None:
    # 300 W for 4 s, then the GPU draws nothing the counter can show: a window ending 2 s after the load
    # stopped read 1,578 J for 1,200 J when the last slope was carried over the hold
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power_w=[(0.0, 300.0), (4.0, 0.0)])], clock=clock)
    src = NvmlSource(fake, clock=clock)
    src.probe()
    log = _drive(src, clock, 6.5)
    gpu0 = _gpu0(log, fake, 2.0, 6.0)
    assert abs(gpu0.energy_j - 600.0) <= gpu0.uncertainty_j
    # reads land on the updates here, the midpoint rule's worst case: half a 100 ms gap of 300 W
    assert abs(gpu0.energy_j - 600.0) <= 0.05 * 300.0 + 1e-6
    idle = _gpu0(log, fake, 4.5, 6.0)  # inside the flat stretch: 0 J, not the slope across it
    assert idle.energy_j == pytest.approx(0.0, abs=1e-9) and idle.uncertainty_j <= 2e-3 + 1e-12


def test_a_driver_reload_is_a_flagged_reset_never_negative_energy() -> None:
    # the counter starts again from 0 at 2.05 s: the old rule gave -3,500 J for +1,500 J, unflagged
    clock = ManualClock()
    fake = FakeNvml(
        [FakeGpu(power_w=500.0, counter_start_mj=5_000_000, driver_reload_at_s=2.05)], clock=clock
    )
    src = NvmlSource(fake, clock=clock)
    src.probe()
    log = _drive(src, clock, 4.0)
    gpu0 = _gpu0(log, fake, 0.5, 3.5)
    assert "counter-reset" in gpu0.flags
    assert gpu0.energy_j >= 0
    assert abs(gpu0.energy_j - 1500.0) <= gpu0.uncertainty_j
    # what the reset lost is bounded by one read gap and one period at twice the 700 W limit
    assert gpu0.uncertainty_j <= 2 * 700.0 * 0.3 + 2 * 0.1 * 500.0
    after = _gpu0(log, fake, 2.5, 3.5)
    assert "counter-reset" not in after.flags
    assert abs(after.energy_j - 500.0) <= after.uncertainty_j


@st.composite
def _nvml_cases(draw: st.DrawFn) -> dict:
    """A GPU whose power steps (idle stretches included) under a counter of 20 ms to 500 ms, read by the
    source at gaps faster and slower than its updates; windows anywhere inside, some shorter than it."""
    period = draw(st.sampled_from([0.02, 0.05, 0.1, 0.25, 0.5]))
    n = draw(st.integers(1, 6))
    times = sorted(draw(st.lists(st.floats(0.0, 8.0), min_size=n - 1, max_size=n - 1)))
    watts = draw(st.lists(st.sampled_from([0.0, 60.0, 350.0, 700.0]), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(0.005, 3 * period), min_size=40, max_size=200))
    windows = [
        (a, a + draw(st.floats(0.0, 4.0)))
        for a in draw(st.lists(st.floats(0.0, 6.0), min_size=1, max_size=6))
    ]
    power = list(zip([0.0, *times], watts, strict=True))
    return {"period": period, "power": power, "gaps": gaps, "windows": windows}


@settings(max_examples=150, deadline=None)
@given(_nvml_cases())
def test_every_window_through_the_nvml_source_is_within_its_uncertainty(case: dict) -> None:
    clock = ManualClock()
    gpu = FakeGpu(power_w=case["power"])
    fake = FakeNvml([gpu], clock=clock, counter_period_s=case["period"])
    src = NvmlSource(fake, clock=clock)
    src.probe()
    src.counter_period_s = case["period"]  # as calibration would find it (a manual clock cannot be timed)
    log = ReadingLog()
    for meta in src.source_metas():
        log.add_source(meta)
    for gap in case["gaps"]:
        log.add(src.read())
        clock.advance(gap)
    log.add(src.read())
    end = clock() - fake.start_s
    for a, b in case["windows"]:
        b = min(b, end)
        if b <= a:
            continue
        row = _gpu0(log, fake, a, b)
        true_j = gpu.energy_between(a, b)
        assert row.uncertainty_j is not None
        assert abs(row.energy_j - true_j) <= row.uncertainty_j + 1e-6, (a, b, row, true_j)

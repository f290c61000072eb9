"""Window accounting on hand-built readings, with exact expected energies."""

from __future__ import annotations

import pytest

from joulebench.measurement.accounting import compute_window
from joulebench.measurement.records import Component, Method, Reading
from joulebench.measurement.series import ReadingLog, SourceMeta

GPU, CPU, DRAM, NODE = Component.GPU, Component.CPU, Component.DRAM, Component.NODE


def _row(result, component, device="all"):
    rows = [c for c in result.components if c.component is component and c.device == device]
    assert len(rows) == 1, f"expected one {component}/{device} row, got {rows}"
    return rows[0]


def _nvml_log() -> ReadingLog:
    """A counter read every 20 ms that updates every 100 ms at 200 W: reads between updates repeat."""
    log = ReadingLog()
    log.add_source(SourceMeta("nvml", interval_s=0.02, counter_period_s=0.1, power_interval_s=0.02))
    readings = []
    for k in range(0, 51):  # 0 .. 1.0 s
        t = k * 0.02
        updated = int(t / 0.1 + 1e-9) * 0.1
        readings.append(Reading(t, "nvml", GPU, "gpu0", energy_j=1000.0 + 200.0 * updated))
    log.add(readings)
    return log


def test_counter_interpolates_between_change_points_not_repeated_reads() -> None:
    log = _nvml_log()
    counter = log.channels[("nvml", GPU, "gpu0")].counter
    assert counter is not None
    assert len(counter) == 11  # one change point per 100 ms update, the 40 repeats dropped
    # the 0.25 s..0.45 s window lies between change points: linear interpolation gives exactly 200 W x 0.2 s
    result = compute_window(log, "w", 0.25, 0.45)
    assert _row(result, GPU, "gpu0").energy_j == pytest.approx(40.0)
    assert _row(result, GPU, "gpu0").method is Method.COUNTER
    assert _row(result, GPU, "gpu0").avg_power_w == pytest.approx(200.0)


def test_short_window_is_flagged_never_a_silent_zero() -> None:
    log = _nvml_log()
    row = _row(compute_window(log, "blip", 0.31, 0.34), GPU, "gpu0")
    assert "shorter-than-counter-period" in row.flags
    assert row.energy_j == pytest.approx(6.0)  # 200 W x 30 ms, not 0 J although no update happened inside


def test_power_only_channel_is_integrated_with_trapezoids() -> None:
    log = ReadingLog()
    log.add_source(SourceMeta("ipmi", interval_s=1.0))
    log.add(
        [Reading(float(t), "ipmi", NODE, "node", power_w=w) for t, w in [(0, 100.0), (1, 200.0), (2, 200.0)]]
    )
    row = _row(compute_window(log, "w", 0.5, 2.0), NODE)
    # 0.5..1: trapezoid 150 -> 200 = 87.5 J; 1..2: 200 J
    assert row.energy_j == pytest.approx(287.5)
    assert row.method is Method.INTEGRATED
    assert row.peak_power_w == pytest.approx(200.0)
    assert "extrapolated" not in row.flags


def test_all_row_sums_devices_and_other_is_node_minus_parts() -> None:
    log = ReadingLog()
    log.add_source(SourceMeta("rapl", interval_s=0.1, counter_period_s=0.001, max_power_w=1000.0))
    log.add_source(SourceMeta("ipmi", interval_s=1.0))
    for t in (0.0, 1.0, 2.0):
        log.add(
            [
                Reading(t, "rapl", CPU, "package-0", energy_j=50.0 * t),
                Reading(t, "rapl", CPU, "package-1", energy_j=30.0 * t),
                Reading(t, "rapl", DRAM, "package-0", energy_j=5.0 * t),
                Reading(t, "ipmi", NODE, "node", power_w=300.0),
            ]
        )
    result = compute_window(log, "w", 0.0, 2.0)
    # the read at 0 s already held what the counter published up to its last update, up to 1 ms before:
    # half a period of each package's power is placed before the window
    cpu = _row(result, CPU)
    assert cpu.energy_j == pytest.approx(160.0 - 80.0 * 0.0005)
    assert abs(cpu.energy_j - 160.0) <= cpu.uncertainty_j
    devices = [_row(result, CPU, d) for d in ("package-0", "package-1")]
    assert cpu.uncertainty_j == pytest.approx(sum(d.uncertainty_j for d in devices))  # bounds add up
    assert cpu.peak_power_w == pytest.approx(80.0)
    assert _row(result, DRAM).energy_j == pytest.approx(10.0, abs=0.01)
    other = _row(result, Component.OTHER)
    assert other.method is Method.DERIVED
    assert other.energy_j == pytest.approx(600.0 - cpu.energy_j - _row(result, DRAM).energy_j)
    # a difference is off by at most the sum of the bounds of what it subtracts
    parts = _row(result, NODE).uncertainty_j + cpu.uncertainty_j + _row(result, DRAM).uncertainty_j
    assert other.uncertainty_j == pytest.approx(parts)
    assert "includes-gpu" in other.flags  # GPU was not measured, so OTHER still contains it


def test_estimated_values_are_labelled_and_never_summed_with_measured_ones() -> None:
    log = ReadingLog()
    log.add_source(SourceMeta("rapl", interval_s=0.1, counter_period_s=0.001, max_power_w=1000.0))
    log.add_source(SourceMeta("estimate", interval_s=0.1, estimated=True))
    for t in (0.0, 1.0):
        log.add(
            [
                Reading(t, "rapl", CPU, "package-0", energy_j=40.0 * t),
                Reading(t, "estimate", CPU, "host", power_w=90.0),
                Reading(t, "estimate", DRAM, "host", power_w=6.0),
            ]
        )
    result = compute_window(log, "w", 0.0, 1.0)
    assert _row(result, CPU).energy_j == pytest.approx(40.0, abs=0.05)  # measured only
    assert _row(result, CPU).method is Method.COUNTER
    est = _row(result, CPU, "host")
    assert est.method is Method.ESTIMATED and est.estimated and "estimated" in est.flags
    assert est.uncertainty_j is None  # a model states no measured bound
    dram = _row(result, DRAM)
    assert dram.estimated and dram.energy_j == pytest.approx(6.0)


def test_idle_baseline_gives_above_idle_energy() -> None:
    log = _nvml_log()
    result = compute_window(log, "w", 0.2, 0.7, idle={(GPU, "gpu0"): 50.0, (GPU, "all"): 50.0})
    row = _row(result, GPU, "gpu0")
    assert row.idle_power_w == 50.0
    assert row.above_idle_energy_j == pytest.approx(100.0 - 25.0)
    assert _row(result, GPU).above_idle_energy_j == pytest.approx(75.0)


def test_window_beyond_the_data_is_flagged_and_nothing_is_extrapolated() -> None:
    log = _nvml_log()
    row = _row(compute_window(log, "late", 0.9, 1.5), GPU, "gpu0")
    assert "extrapolated" in row.flags
    # only what the counter published (up to its last update, about 1.0 s) is counted; past it no read
    # says what was spent, and without a stated maximum power no bound can be given
    assert row.energy_j == pytest.approx(200.0 * 0.1, abs=200.0 * 0.02)
    assert row.uncertainty_j is None
    bounded = ReadingLog()
    bounded.add_source(SourceMeta("nvml", interval_s=0.02, counter_period_s=0.1, max_power_w=1400.0))
    bounded.add(log.readings())
    row = _row(compute_window(bounded, "late", 0.9, 1.5), GPU, "gpu0")
    assert row.energy_j <= 200.0 * 0.6 <= row.energy_j + row.uncertainty_j


def test_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_window(_nvml_log(), "bad", 1.0, 0.5)


def test_a_counter_that_never_moves_is_a_measured_zero_not_missing() -> None:
    # some machines expose a RAPL dram zone whose counter stays at 0: read after read, the same value
    log = ReadingLog()
    log.add_source(SourceMeta("rapl", interval_s=0.1, counter_period_s=0.001))
    log.add([Reading(k * 0.1, "rapl", DRAM, "package-0", energy_j=0.0) for k in range(11)])
    row = _row(compute_window(log, "w", 0.25, 0.75), DRAM, "package-0")
    assert row.energy_j == 0.0 and row.method is Method.COUNTER
    assert row.avg_power_w == 0.0 and row.peak_power_w == 0.0
    assert "no-samples" not in row.flags and "extrapolated" not in row.flags
    # a counter read only once says nothing about any window
    single = ReadingLog()
    single.add_source(SourceMeta("rapl", interval_s=0.1, counter_period_s=0.001))
    single.add([Reading(0.0, "rapl", DRAM, "package-0", energy_j=0.0)])
    assert _row(compute_window(single, "w", 0.25, 0.75), DRAM, "package-0").energy_j is None

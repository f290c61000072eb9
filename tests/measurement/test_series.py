"""Bounded memory: counters keep change points, power timelines merge pairs when full."""

from __future__ import annotations

import pytest

from joulebench.measurement.accounting import integrate_power
from joulebench.measurement.series import CounterSeries, PowerSeries


def test_counter_keeps_each_change_and_the_read_before_it() -> None:
    c = CounterSeries()
    for t, e in [(0.0, 1.0), (0.02, 1.0), (0.04, 1.0), (0.1, 3.0), (0.12, 3.0)]:
        c.add(t, e)
    assert list(c.t_s) == [0.0, 0.1]
    assert list(c.before_s) == [0.0, 0.04]  # the counter still showed 1.0 at 0.04: it updated after
    assert list(c.energy_j) == [1.0, 3.0]
    assert c.last_read_s == 0.12
    # the reads that rebuild it: the repeats in between add nothing the first and last read do not say
    assert c.reads() == [(0.0, 1.0, False), (0.04, 1.0, False), (0.1, 3.0, False), (0.12, 3.0, False)]


def test_power_series_stays_bounded_keeps_peaks_and_integral() -> None:
    s = PowerSeries(max_points=1000)
    n = 20_000
    for k in range(n):
        s.add(k * 0.02, 500.0 if k == 12_345 else 100.0)
    assert len(s) < 1000
    assert max(s.peak_w) == 500.0  # a one-sample spike survives decimation
    result = integrate_power(s, 0.0, (n - 1) * 0.02)
    assert result is not None
    energy, peak, _ = result
    assert energy == pytest.approx(100.0 * (n - 1) * 0.02, rel=1e-3)
    assert peak == 500.0


def test_power_series_rejects_tiny_bounds() -> None:
    with pytest.raises(ValueError):
        PowerSeries(max_points=2)


def test_two_counter_values_at_one_instant_keep_the_later_and_never_divide_by_zero() -> None:
    from joulebench.measurement.counter import counter_window

    c = CounterSeries()
    for t, e in [(1.0, 10.0), (2.0, 20.0), (2.0, 21.0)]:
        c.add(t, e)
    assert list(c.t_s) == [1.0, 2.0]
    assert list(c.energy_j) == [10.0, 21.0]
    result = counter_window(c, 0.5, 3.0, period_s=0.1, max_power_w=100.0)
    assert result is not None and result.energy_j == pytest.approx(11.0)

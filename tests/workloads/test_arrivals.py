from __future__ import annotations

import math
import statistics

import pytest

from joulebench.errors import UsageError
from joulebench.workloads.arrivals import arrival_times_s


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0, *times], times, strict=False)]


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_times_s(5, math.inf, seed=0) == [0.0] * 5


def test_poisson_rate_and_exponential_gaps() -> None:
    times = arrival_times_s(4000, 10.0, seed=1)
    assert times == sorted(times)
    assert times[-1] == pytest.approx(400.0)  # rescaled so the offered load is exactly 10 requests/s
    gaps = _gaps(times)
    # exponential gaps: coefficient of variation 1
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.08)


def test_burstiness_changes_the_spread_not_the_rate() -> None:
    bursty = _gaps(arrival_times_s(4000, 5.0, burstiness=0.25, seed=2))
    regular = _gaps(arrival_times_s(4000, 5.0, burstiness=16.0, seed=2))
    # Gamma(shape k): coefficient of variation 1/sqrt(k)
    assert statistics.stdev(bursty) / statistics.mean(bursty) == pytest.approx(2.0, rel=0.15)
    assert statistics.stdev(regular) / statistics.mean(regular) == pytest.approx(0.25, rel=0.15)
    assert sum(bursty) == pytest.approx(800.0) and sum(regular) == pytest.approx(800.0)


def test_infinite_burstiness_is_a_constant_rate() -> None:
    assert arrival_times_s(4, 2.0, burstiness=math.inf, seed=0) == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_seeded() -> None:
    assert arrival_times_s(50, 3.0, seed=5) == arrival_times_s(50, 3.0, seed=5)
    assert arrival_times_s(50, 3.0, seed=5) != arrival_times_s(50, 3.0, seed=6)
    assert arrival_times_s(0, 3.0, seed=5) == []


@pytest.mark.parametrize(("rate", "burstiness"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (math.nan, 1.0)])
def test_bad_parameters(rate: float, burstiness: float) -> None:
    with pytest.raises(UsageError):
        arrival_times_s(3, rate, burstiness, seed=0)

from __future__ import annotations

import math

import pytest

from joulebench.results.stats import repeats_needed, summarize, t_quantile

# Reference quantiles of Student's t (two-sided 90/95/99 %), from published tables.
KNOWN = [
    (0.975, 1, 12.7062),
    (0.975, 2, 4.3027),
    (0.975, 4, 2.7764),
    (0.975, 9, 2.2622),
    (0.975, 10, 2.2281),
    (0.975, 30, 2.0423),
    (0.95, 1, 6.3138),
    (0.95, 5, 2.0150),
    (0.95, 20, 1.7247),
    (0.995, 3, 5.8409),
    (0.995, 29, 2.7564),
]
# Beyond the table the Cornish-Fisher expansion takes over.
KNOWN_LARGE_DF = [
    (0.975, 31, 2.039513),
    (0.975, 40, 2.021075),
    (0.975, 60, 2.000298),
    (0.975, 120, 1.979930),
    (0.975, 1000, 1.962339),
    (0.995, 40, 2.704459),
    (0.95, 60, 1.670649),
]


@pytest.mark.parametrize(("p", "df", "expected"), KNOWN)
def test_t_quantile_table(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(("p", "df", "expected"), KNOWN_LARGE_DF)
def test_t_quantile_cornish_fisher(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-5)


def test_t_quantile_is_continuous_at_the_table_edge() -> None:
    assert abs(t_quantile(0.975, 30) - t_quantile(0.975, 31)) < 0.005


@pytest.mark.parametrize(("p", "df"), [(0.975, 0), (0.4, 5), (0.9, 5)])
def test_t_quantile_rejects_what_it_cannot_answer(p: float, df: int) -> None:
    with pytest.raises(ValueError):
        t_quantile(p, df)


def test_summarize_known_sample() -> None:
    # mean 5, sample sd sqrt(2.5); CI half-width = t(0.975, 4) * sd / sqrt(5)
    s = summarize([3.0, 4.0, 5.0, 6.0, 7.0])
    assert s.n == 5
    assert s.mean == pytest.approx(5.0)
    assert s.std == pytest.approx(math.sqrt(2.5))
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert s.ci_low == pytest.approx(5.0 - half)
    assert s.ci_high == pytest.approx(5.0 + half)
    assert s.ci_half_width == pytest.approx(half)
    assert s.cv == pytest.approx(math.sqrt(2.5) / 5.0)
    assert s.warning is not None and "CV 31.6% > 5%" in s.warning


def test_stable_sample_has_no_warning() -> None:
    s = summarize([100.0, 101.0, 99.0, 100.5, 99.5])
    assert s.cv is not None and s.cv < 0.05
    assert s.warning is None


def test_repeats_that_differ_only_in_rounding_have_no_spread() -> None:
    # an estimate's constant power over three repeats, as stored by a real run: equal but for the last bits
    s = summarize([8.8276047706604, 8.827604770660399, 8.827604770660402])
    assert s.std == 0.0 and s.ci_half_width == 0.0 and s.cv == 0.0
    # a spread of one part in 10^9 is still one
    real = summarize([1.0, 1.0 + 1e-9, 1.0 - 1e-9])
    assert real.std is not None and real.std > 0 and real.ci_half_width is not None and real.ci_half_width > 0


def test_too_few_repeats_warn_and_suggest_a_number() -> None:
    s = summarize([10.0, 12.0])
    assert s.warning is not None and "2 repeats (need >= 3)" in s.warning
    assert s.repeats_needed is not None and s.repeats_needed > 2
    assert f"~{s.repeats_needed} repeats" in s.warning


def test_single_and_missing_values() -> None:
    assert summarize([]).mean is None
    one = summarize([4.0, None])
    assert one.n == 1 and one.mean == 4.0 and one.std is None and one.ci_low is None
    assert one.warning is not None


def test_repeats_needed_meets_the_target_width() -> None:
    mean, sd = 10.0, 1.0
    n = repeats_needed(mean, sd)
    # n satisfies t_{n-1} s / sqrt(n) <= 5 % of the mean, and n - 1 does not
    assert t_quantile(0.975, n - 1) * sd / math.sqrt(n) <= 0.05 * mean
    assert t_quantile(0.975, n - 2) * sd / math.sqrt(n - 1) > 0.05 * mean
    assert n == 18  # (1.96 * 0.1 / 0.05)^2 = 15.4, iterated with t: 18


@pytest.mark.parametrize("cv", [0.005, 0.025, 0.04, 0.05, 0.06, 0.075, 0.1, 0.15, 0.3])
def test_repeats_needed_is_the_smallest_n_meeting_the_target(cv: float) -> None:
    # At CV 5 % the fixed-point iteration alternates between 6 and 7; the answer is 7.
    n = repeats_needed(1.0, cv)
    assert t_quantile(0.975, n - 1) * cv / math.sqrt(n) <= 0.05
    assert n == 2 or t_quantile(0.975, n - 2) * cv / math.sqrt(n - 1) > 0.05
    if cv == 0.05:
        assert n == 7


def test_to_dict_carries_the_half_width() -> None:
    d = summarize([1.0, 2.0, 3.0]).to_dict()
    assert d["ci_half_width"] == pytest.approx(d["ci_high"] - d["mean"])
    assert set(d) >= {"n", "mean", "std", "ci_low", "ci_high", "cv", "warning", "repeats_needed"}

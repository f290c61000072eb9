from __future__ import annotations

import pytest

from joulebench.workloads.spec import Request
from joulebench.workloads.stats import percentile, prompt_length_stats


def test_prompt_length_stats() -> None:
    requests = [Request(i, "p", prompt_tokens=n) for i, n in enumerate([10, 20, 30, 40, 100])]
    assert prompt_length_stats(requests) == {
        "count": 5,
        "mean_tokens": 40.0,
        "p50_tokens": 30.0,
        "p90_tokens": pytest.approx(76.0),  # 40 + 0.6 * (100 - 40)
        "min_tokens": 10.0,
        "max_tokens": 100.0,
    }


def test_percentile_matches_linear_interpolation() -> None:
    values = [1.0, 2.0, 4.0, 8.0]
    assert [percentile(values, q) for q in (0, 25, 50, 100)] == [1.0, 1.75, 3.0, 8.0]


def test_unknown_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="load the requests with the model's tokenizer"):
        prompt_length_stats([Request(0, "p", prompt_tokens=3), Request(1, "q")])


def test_no_requests() -> None:
    assert prompt_length_stats([]) == {"count": 0}

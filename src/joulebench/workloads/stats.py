"""Prompt-length statistics, in tokens of the model's own tokenizer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from joulebench.workloads.spec import Request


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (NumPy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def prompt_length_stats(requests: Sequence[Request]) -> dict[str, float]:
    """``count``, ``mean_tokens``, ``p50_tokens``, ``p90_tokens``, ``min_tokens``, ``max_tokens``.

    Every request must carry ``prompt_tokens`` (load them with the model's tokenizer).
    """
    lengths = sorted(r.prompt_tokens for r in requests if r.prompt_tokens is not None)
    if len(lengths) != len(requests):
        raise ValueError("prompt lengths are unknown: load the requests with the model's tokenizer")
    if not lengths:
        return {"count": 0}
    return {
        "count": len(lengths),
        "mean_tokens": sum(lengths) / len(lengths),
        "p50_tokens": percentile(lengths, 50),
        "p90_tokens": percentile(lengths, 90),
        "min_tokens": float(lengths[0]),
        "max_tokens": float(lengths[-1]),
    }

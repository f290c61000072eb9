"""Request arrival times for serving benchmarks, drawn as ``vllm bench serve`` draws them.

Gaps between requests are Gamma(shape=burstiness, scale=1/(rate*burstiness)): exponential (a Poisson
process) at burstiness 1, burstier below 1, more regular above; at infinite burstiness every gap is
1/rate. As vLLM does, the cumulative times are then rescaled so the last request arrives at exactly
``n / rate``: the offered load is the requested rate whatever the seed, not 1-2% off it.
"""

from __future__ import annotations

import math
import random

from joulebench.errors import UsageError


def arrival_times_s(n: int, request_rate: float, burstiness: float = 1.0, *, seed: int) -> list[float]:
    """Arrival time of each of ``n`` requests, in seconds after the benchmark starts (non-decreasing).

    ``request_rate`` is in requests per second; ``math.inf`` sends every request at 0.
    """
    if n < 0:
        raise UsageError(f"number of requests must be >= 0, got {n}")
    if not request_rate > 0:
        raise UsageError(f"request rate must be > 0 requests/s (or inf), got {request_rate}")
    if not burstiness > 0:
        raise UsageError(f"burstiness must be > 0, got {burstiness}")
    if n == 0:
        return []
    if math.isinf(request_rate):
        return [0.0] * n
    rng = random.Random(seed)
    if math.isinf(burstiness):
        gaps_s = [1.0 / request_rate] * n
    else:
        scale_s = 1.0 / (request_rate * burstiness)
        gaps_s = [rng.gammavariate(burstiness, scale_s) for _ in range(n)]
    times_s: list[float] = []
    total_s = 0.0
    for gap_s in gaps_s:
        total_s += gap_s
        times_s.append(total_s)
    factor = (n / request_rate) / times_s[-1] if times_s[-1] > 0 else 1.0
    return [t * factor for t in times_s]

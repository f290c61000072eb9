"""Statistics over repeats: mean, standard deviation, Student-t confidence interval, stability verdict.

scipy is not a dependency, so the t quantile comes from an exact table for df 1..30 (where the normal
approximation is poor) and the Cornish-Fisher expansion around the normal quantile beyond it (error below
1e-5 for df > 30).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

#: CV above which a metric is called unstable (pyperf's and ML.ENERGY's habit).
CV_WARN = 0.05
#: Fewer repeats than this give no usable spread.
MIN_REPEATS = 3
#: The target CI half-width, relative to the mean, used to suggest a number of repeats.
TARGET_REL_HALF_WIDTH = 0.05
#: A spread below this fraction of the mean is the arithmetic's rounding (repeats of a constant estimate
#: that agree to the last bits), not a measured one: it is taken as none.
ROUNDING_REL = 1e-12

# One-sided quantiles t_{p, df} for df = 1..30, keyed by p (two-sided 90 %, 95 %, 99 %).
_T_TABLE: dict[float, tuple[float, ...]] = {
    0.95: (
        6.313751515, 2.919985580, 2.353363435, 2.131846786, 2.015048373, 1.943180281, 1.894578605,
        1.859548038, 1.833112933, 1.812461123, 1.795884819, 1.782287556, 1.770933396, 1.761310136,
        1.753050356, 1.745883676, 1.739606726, 1.734063607, 1.729132812, 1.724718243, 1.720742903,
        1.717144374, 1.713871528, 1.710882080, 1.708140761, 1.705617920, 1.703288446, 1.701130934,
        1.699127027, 1.697260887,
    ),
    0.975: (
        12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252,
        2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688,
        2.131449546, 2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845,
        2.073873068, 2.068657610, 2.063898562, 2.059538553, 2.055529439, 2.051830516, 2.048407142,
        2.045229642, 2.042272456,
    ),
    0.995: (
        63.656741163, 9.924843201, 5.840909310, 4.604094871, 4.032142984, 3.707428021, 3.499483297,
        3.355387331, 3.249835542, 3.169272673, 3.105806516, 3.054539589, 3.012275839, 2.976842734,
        2.946712883, 2.920781622, 2.898230520, 2.878440473, 2.860934606, 2.845339709, 2.831359558,
        2.818756061, 2.807335684, 2.796939505, 2.787435814, 2.778714533, 2.770682957, 2.763262455,
        2.756385904, 2.749995654,
    ),
}  # fmt: skip


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (p in 0.95, 0.975, 0.995 for
    df <= 30; any 0.5 < p < 1 beyond)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), got {p}")
    if df <= len(_T_TABLE[0.975]):
        for key, row in _T_TABLE.items():
            if math.isclose(p, key):
                return row[df - 1]
        raise ValueError(f"t quantile for p={p} and df={df} <= 30 is not tabulated (use 0.95, 0.975, 0.995)")
    return _cornish_fisher(p, df)


def _cornish_fisher(p: float, df: float) -> float:
    # Abramowitz & Stegun 26.7.5: the t quantile as a series in 1/df around the normal quantile.
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@dataclass(frozen=True)
class Summary:
    """One metric across repeats. ``ci_low``/``ci_high`` are ``None`` below two values."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    cv: float | None
    confidence: float
    warning: str | None
    repeats_needed: int | None  # for a CI half-width of 5 % of the mean

    @property
    def ci_half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci_half_width"] = self.ci_half_width
        return d


def repeats_needed(
    mean: float, std: float, confidence: float = 0.95, rel_half_width: float = TARGET_REL_HALF_WIDTH
) -> int:
    """Smallest n with t_{n-1} * s / sqrt(n) <= rel_half_width * |mean|, i.e. n >= (t_{n-1} s / (w mean))^2.

    t depends on n, and iterating that formula can oscillate between two values (6 and 7 at CV 5 %), so
    the search steps up from the normal-quantile bound, which never exceeds the answer (t > z); the
    answer lies a few steps above it."""
    if mean == 0:
        raise ValueError("a relative CI width needs a non-zero mean")
    if std == 0:
        return 2
    p = 1 - (1 - confidence) / 2
    ratio = std / (rel_half_width * abs(mean))
    n = max(2, math.ceil((NormalDist().inv_cdf(p) * ratio) ** 2))
    while t_quantile(p, n - 1) * ratio > math.sqrt(n):
        n += 1
    return n


def summarize(values: Sequence[float | None], confidence: float = 0.95) -> Summary:
    """Mean, sample standard deviation, Student-t CI, CV and a stability verdict over repeats.

    ``None`` values (a repeat where the metric was unavailable) are left out and counted as missing."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None, None, confidence, "no values", None)
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(
            1, mean, None, None, None, None, confidence, f"1 repeat: no spread (need >= {MIN_REPEATS})", None
        )
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if std <= ROUNDING_REL * abs(mean):
        std = 0.0
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * std / math.sqrt(n)
    cv = std / abs(mean) if mean != 0 else None
    needed = repeats_needed(mean, std, confidence) if mean != 0 else None
    problems = []
    if n < MIN_REPEATS:
        problems.append(f"{n} repeats (need >= {MIN_REPEATS})")
    if cv is not None and cv > CV_WARN:
        problems.append(f"CV {cv:.1%} > {CV_WARN:.0%}")
    warning = None
    if problems:
        warning = "; ".join(problems)
        if needed is not None and needed > n:
            warning += f"; ~{needed} repeats for a ±{TARGET_REL_HALF_WIDTH:.0%} CI"
    return Summary(n, mean, std, mean - half, mean + half, cv, confidence, warning, needed)


def median_p90(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The median and the 90th percentile (nearest rank) of the known values; ``None`` when there are none.
    The requests' energy shares are summarized so wherever they are shown."""
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    mid = len(known) // 2
    median = known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2
    return median, known[max(math.ceil(0.9 * len(known)) - 1, 0)]

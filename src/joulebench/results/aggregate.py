"""Per-trial metrics summarised across repeats: mean, spread and 95 % CI (Student t) per group.

Setup trials are pooled across workloads (setup does not depend on them), and the stages the engine says
do not depend on the model (import and engine initialisation for most, as in the paper's Table 1) across
models too. Statistics come from :mod:`joulebench.results.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from joulebench.engines.base import MODEL_FREE_STAGES
from joulebench.errors import require
from joulebench.results.stats import Summary, summarize

if TYPE_CHECKING:
    import pandas as pd

ALL_MODELS = "all models"
KEYS = ["kind", "engine", "model", "workload", "stage", "component", "estimated", "metric", "unit"]
COLUMNS = [*KEYS[:4], "batch_size", "max_output_tokens", *KEYS[4:]]
COLUMNS += ["method", "n", "mean", "std", "ci_low", "ci_high", "ci_half_width", "cv", "warning", "bound"]


@dataclass(frozen=True)
class Stat:
    """One summarised figure as the tables and figures use it."""

    mean: float
    half_width: float | None  # None with fewer than two repeats
    n: int
    estimated: bool
    method: str
    bound: float | None = None  # the measurement's own bound, mean over the repeats (docs/counters.md)


def summarize_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Group the tidy per-trial frame and summarise ``value`` across trials (repeats) of each group."""
    pd = require("pandas", extra="report")
    if metrics.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = metrics.copy()
    not_gen = df["kind"] != "generation"
    df.loc[not_gen, "workload"] = ""
    shape = ["batch_size", "max_output_tokens"]
    df[shape] = df[shape].astype(float)
    df.loc[not_gen, shape] = float("nan")
    # the engine's stages that do not depend on the model: one figure per engine (tidy's model_free; the
    # paper's two for a frame made without it)
    free = df["model_free"].eq(True) if "model_free" in df else df["stage"].isin(MODEL_FREE_STAGES)
    df.loc[not_gen & free, "model"] = ALL_MODELS
    rows = []
    for key, group in df.groupby(KEYS, sort=False, dropna=False):
        s: Summary = summarize(list(group["value"]))
        first = group.iloc[0]
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "batch_size": first["batch_size"],
                "max_output_tokens": first["max_output_tokens"],
                "method": "/".join(sorted({m for m in group["method"] if m})),
                "n": s.n,
                "mean": s.mean,
                "std": s.std,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "ci_half_width": s.ci_half_width,
                "cv": s.cv,
                "warning": s.warning,
                "bound": _mean_bound(group),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean_bound(group: pd.DataFrame) -> float:
    # |mean measured - mean true| <= mean of the bounds, each repeat being within its own; a repeat that
    # states none (an estimate, a row stored before bounds were) leaves the group without one
    if "uncertainty" not in group:
        return float("nan")
    bounds = [float(v) for v in group["uncertainty"]]
    if not bounds or any(v != v for v in bounds):
        return float("nan")
    return sum(bounds) / len(bounds)


class StatIndex:
    """Look-ups into a summary frame by (kind, engine, model, workload, stage, component, metric)."""

    def __init__(self, summary: pd.DataFrame) -> None:
        self._stats: dict[tuple[str, ...], list[Stat]] = {}
        for r in summary.to_dict("records"):
            key = tuple(str(r[k]) for k in ("kind", "engine", "model", "workload", "stage", "component"))
            key += (str(r["metric"]),)
            if r["mean"] is None or r["mean"] != r["mean"]:
                continue
            half = r["ci_half_width"]
            half = None if half is None or half != half else float(half)
            bound = r.get("bound")
            bound = None if bound is None or bound != bound else float(bound)
            stat = Stat(float(r["mean"]), half, int(r["n"]), bool(r["estimated"]), str(r["method"]), bound)
            # Measured before estimated, when one component was measured in some runs and estimated in others.
            self._stats.setdefault(key, []).append(stat)
            self._stats[key].sort(key=lambda s: s.estimated)

    def get(
        self, kind: str, engine: str, model: str, workload: str, stage: str, component: str, metric: str
    ) -> Stat | None:
        found = self._stats.get((kind, engine, model, workload, stage, component, metric))
        return found[0] if found else None

"""`joulebench advise`: which engine uses the least energy per day for a given load, and where that flips.

Daily energy of an engine is ``(E_setup + E_first) x K + E_token x N x T`` (the paper's Eq. 2 per day, with
the first batch's extra cost added to a restart): K cold starts, N requests of T output tokens. E_first is
what the first batch of the workload's shape after an engine start (the measured warm-up) costs above the
same tokens at the warm repeats' J/token: allocator growth, compilation, CUDA graphs, paid again on every
restart. It is counted where a full-length warm-up was measured, and never below zero. Both terms are
linear, so two engines trade places at most once along N (at fixed K) and once along K (at fixed N): those
crossover points turn the paper's "no single best engine" (section 4.6) into a decision. Only measured
totals are used; an estimated figure never ranks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from itertools import combinations, pairwise
from typing import TYPE_CHECKING

from joulebench.errors import UsageError
from joulebench.results.aggregate import ALL_MODELS, Stat, StatIndex
from joulebench.results.energy import TOTAL
from joulebench.results.tidy import GENERATE, WARMUP, restart_setup_label

if TYPE_CHECKING:
    import pandas as pd

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Load:
    requests_per_day: float
    cold_starts_per_day: float
    tokens_per_request: float
    tokens_measured: bool  # True when T is the measured mean output tokens per response

    @property
    def tokens_per_day(self) -> float:
        return self.requests_per_day * self.tokens_per_request


@dataclass(frozen=True)
class EngineDay:
    """One engine's measured figures and its energy for one day of the load."""

    engine: str
    setup_energy_j: float
    setup_half_width_j: float | None
    j_per_token: float
    j_per_token_half_width: float | None
    energy_j: float
    energy_half_width_j: float | None
    gco2: float | None
    cost: float | None
    setup_from: str = ""  # the setup trials used, where not the engine's own (e.g. its warm-cache ones)
    first_batch_j: float = 0.0  # E_first: the first batch's cost above a warm one, per restart
    pct_of_floor: float | None = None  # its GPU J/token against its card's floor (docs/roofline.md)
    first_batch_n: int = 0  # engine starts whose warm-up measured it (0: not measured or cut short)

    @property
    def kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def restart_energy_j(self) -> float:
        """What one cold start adds to a day: the setup stage and the first batch's extra cost."""
        return self.setup_energy_j + self.first_batch_j


@dataclass(frozen=True)
class Crossover:
    """Where two engines trade places along one variable, the other held at the asked load."""

    engine_a: str
    engine_b: str
    variable: str  # requests_per_day | cold_starts_per_day
    value: float
    low: float  # range from the 95 % CIs of both engines' figures
    high: float  # math.inf when the CIs allow no crossover at all
    cheaper_below: str
    cheaper_above: str


@dataclass(frozen=True)
class Advice:
    model: str
    workload: str
    load: Load
    ranking: tuple[EngineDay, ...]
    crossovers: tuple[Crossover, ...]
    dominance: tuple[tuple[str, str], ...]  # (better, worse): better at every load
    ties: tuple[tuple[str, str], ...]  # neighbours in the ranking whose daily-energy CIs overlap
    excluded: tuple[tuple[str, str], ...]  # (engine, why)
    grid_gco2_per_kwh: float | None
    price_per_kwh: float | None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for c in d["crossovers"]:
            c["high"] = None if math.isinf(c["high"]) else c["high"]
        d["load"]["tokens_per_day"] = self.load.tokens_per_day
        for r, e in zip(d["ranking"], self.ranking, strict=True):
            r["kwh"] = e.kwh
        return d


def advise(
    summary: pd.DataFrame,
    metrics: pd.DataFrame,
    requests_per_day: float,
    cold_starts_per_day: float,
    tokens_per_request: float | None = None,
    model: str | None = None,
    workload: str | None = None,
    grid_gco2_per_kwh: float | None = None,
    price_per_kwh: float | None = None,
) -> Advice:
    """Rank engines by daily energy and find the crossovers, from summarised measurements."""
    for name, value in (
        ("--requests-per-day", requests_per_day),
        ("--cold-starts-per-day", cold_starts_per_day),
    ):
        if not value >= 0 or math.isinf(value):
            raise UsageError(f"{name} must be a number >= 0, got {value}")
    if tokens_per_request is not None and not (tokens_per_request > 0 and math.isfinite(tokens_per_request)):
        raise UsageError(f"--tokens-per-request must be > 0, got {tokens_per_request}")
    gen = summary[(summary["kind"] == "generation") & (summary["stage"] == "generate")]
    model = _choose("model", model, sorted(set(gen["model"])))
    gen = gen[gen["model"] == model]
    workload = _choose("workload", workload, sorted(set(gen["workload"])))
    load = _load(metrics, model, workload, requests_per_day, cold_starts_per_day, tokens_per_request)
    index = StatIndex(summary)
    setup_labels = set(summary[summary["kind"] == "setup"]["engine"])
    days, excluded = [], []
    for engine in sorted(set(gen[gen["workload"] == workload]["engine"])):
        per_token = index.get("generation", engine, model, workload, "generate", TOTAL, "j_per_token")
        setup_from = restart_setup_label(engine, setup_labels)
        setup = setup_energy(index, setup_from, model)
        if per_token is None:
            excluded.append((engine, "no measured J/token (only estimated or unmeasured components)"))
        elif setup is None:
            excluded.append((engine, "no measured setup energy: run it with setup trials"))
        else:
            first = first_batch_excess(metrics, engine, model, workload)
            day = _day(engine, setup, per_token, first, load, grid_gco2_per_kwh, price_per_kwh)
            floor = index.get("generation", engine, model, workload, "generate", "gpu", "pct_of_floor")
            days.append(
                replace(
                    day,
                    setup_from=setup_from if setup_from != engine else "",
                    pct_of_floor=floor.mean if floor else None,
                )
            )
    if not days:
        why = "; ".join(f"{e}: {r}" for e, r in excluded)
        raise UsageError(
            f"no engine has measured setup and generation energy for {model} / {workload} ({why})"
        )
    days.sort(key=lambda d: d.energy_j)
    crossovers, dominance = _crossovers(days, load)
    return Advice(model, workload, load, tuple(days), tuple(crossovers), tuple(dominance), tuple(_ties(days)),
                  tuple(excluded), grid_gco2_per_kwh, price_per_kwh)  # fmt: skip


def _choose(what: str, asked: str | None, available: list[str]) -> str:
    if not available:
        raise UsageError("the selected runs have no finished token-generation trial to advise from")
    if asked is None:
        if len(available) > 1:
            raise UsageError(f"several {what}s measured ({', '.join(available)}): pick one with --{what}")
        return available[0]
    if asked not in available:
        raise UsageError(
            f"no token-generation results for {what} {asked!r}; measured: {', '.join(available)}"
        )
    return asked


def _load(metrics: pd.DataFrame, model: str, workload: str, n: float, k: float, tokens: float | None) -> Load:
    if tokens is not None:
        return Load(n, k, float(tokens), tokens_measured=False)
    # One T for every engine, pooled over all of them: the service asked for is the same whichever runs it.
    per_response = metrics[
        (metrics["metric"] == "output_tokens_per_response")
        & (metrics["model"] == model)
        & (metrics["workload"] == workload)
    ]["value"]
    if per_response.empty:
        raise UsageError("no measured output tokens per response: pass --tokens-per-request")
    return Load(n, k, float(per_response.mean()), tokens_measured=True)


def setup_energy(index: StatIndex, engine: str, model: str) -> Stat | None:
    """E_setup: the measured setup window, else the sum of its measured parts (import, E_IE, E_LM, first)."""
    whole = index.get("setup", engine, model, "", "setup", TOTAL, "energy_j")
    if whole is not None:
        return whole
    # each stage pooled over models where the engine's does not depend on the model, else the model's own
    parts = [
        index.get("setup", engine, ALL_MODELS, "", stage, TOTAL, "energy_j")
        or index.get("setup", engine, model, "", stage, TOTAL, "energy_j")
        for stage in ("import", "engine_init", "model_load", "first_token")
    ]
    if parts[1] is None or parts[2] is None:
        return None  # without both E_IE and E_LM the sum would understate setup
    found = [p for p in parts if p is not None]
    halves = [p.half_width for p in found]
    half = math.sqrt(sum(h * h for h in halves if h is not None)) if None not in halves else None
    return Stat(sum(p.mean for p in found), half, min(p.n for p in found), False, "sum of stages")


def first_batch_excess(metrics: pd.DataFrame, engine: str, model: str, workload: str) -> tuple[float, int]:
    """E_first and the engine starts it comes from. Each warm-up is set against the repeats of its own run
    (the same engine start and GPUs: cards differ by several per cent at equal work) and the excesses
    averaged. A warm-up cut short (``warmup_tokens``) says nothing of the first full batch and is left out;
    a first batch cheaper than its repeats is noise and counts as 0."""
    rows = metrics[
        (metrics["engine"] == engine)
        & (metrics["model"] == model)
        & (metrics["workload"] == workload)
        & (metrics["kind"] == "generation")
    ]

    def per_run(stage: str, component: str, metric: str) -> dict[int, float]:
        found = rows[(rows["stage"] == stage) & (rows["component"] == component) & (rows["metric"] == metric)]
        return {int(k): float(v) for k, v in found.groupby("run_id")["value"].mean().items()}

    warm_j, warm_tokens = per_run(WARMUP, TOTAL, "energy_j"), per_run(WARMUP, "", "output_tokens")
    repeat_per_token = per_run(GENERATE, TOTAL, "j_per_token")
    repeat_tokens = per_run(GENERATE, "", "output_tokens")
    excesses = [
        max(0.0, warm_j[run] - repeat_per_token[run] * warm_tokens[run])
        for run in warm_j
        if run in warm_tokens
        and run in repeat_per_token
        and warm_tokens[run] >= repeat_tokens.get(run, math.inf)
    ]
    return (math.fsum(excesses) / len(excesses), len(excesses)) if excesses else (0.0, 0)


def _day(
    engine: str,
    setup: Stat,
    per_token: Stat,
    first: tuple[float, int],
    load: Load,
    grid: float | None,
    price: float | None,
) -> EngineDay:
    first_j, first_n = first
    energy = (setup.mean + first_j) * load.cold_starts_per_day + per_token.mean * load.tokens_per_day
    # The half-width spans the setup trials and the repeats; one warm-up per engine start has no spread of
    # its own to add (the output says so where it counts).
    half = None
    if setup.half_width is not None and per_token.half_width is not None:
        half = math.hypot(
            setup.half_width * load.cold_starts_per_day, per_token.half_width * load.tokens_per_day
        )
    kwh = energy / J_PER_KWH
    return EngineDay(
        engine, setup.mean, setup.half_width, per_token.mean, per_token.half_width, energy, half,
        None if grid is None else kwh * grid, None if price is None else kwh * price,
        first_batch_j=first_j, first_batch_n=first_n,
    )  # fmt: skip


def _crossovers(days: list[EngineDay], load: Load) -> tuple[list[Crossover], list[tuple[str, str]]]:
    out, dominance = [], []
    for a, b in combinations(days, 2):
        d_setup = b.restart_energy_j - a.restart_energy_j  # > 0: a starts cheaper
        d_token = a.j_per_token - b.j_per_token  # > 0: b generates cheaper
        if d_setup * d_token <= 0:
            if a.restart_energy_j <= b.restart_energy_j and a.j_per_token <= b.j_per_token:
                dominance.append((a.engine, b.engine))
            elif b.restart_energy_j <= a.restart_energy_j and b.j_per_token <= a.j_per_token:
                dominance.append((b.engine, a.engine))
            continue
        cheap_start, cheap_token = (a, b) if d_setup > 0 else (b, a)
        h_setup = _hypot(a.setup_half_width_j, b.setup_half_width_j)
        h_token = _hypot(a.j_per_token_half_width, b.j_per_token_half_width)
        ratio, low, high = _ratio(abs(d_setup), h_setup, abs(d_token), h_token)
        if load.cold_starts_per_day > 0:
            scale = load.cold_starts_per_day / load.tokens_per_request
            out.append(Crossover(a.engine, b.engine, "requests_per_day", ratio * scale, low * scale,
                                 high * scale, cheap_start.engine, cheap_token.engine))  # fmt: skip
        if load.tokens_per_day > 0:
            # K* = N T dp / dS: the inverse ratio, so the CI bounds swap.
            inv = (1 / ratio, 1 / high if high > 0 else math.inf, 1 / low if low > 0 else math.inf)
            scale = load.tokens_per_day
            out.append(Crossover(a.engine, b.engine, "cold_starts_per_day", inv[0] * scale, inv[1] * scale,
                                 inv[2] * scale, cheap_token.engine, cheap_start.engine))  # fmt: skip
    return out, dominance


def _hypot(x: float | None, y: float | None) -> float:
    return math.hypot(x or 0.0, y or 0.0)


def _ratio(num: float, h_num: float, den: float, h_den: float) -> tuple[float, float, float]:
    """num/den with the range its CIs allow; positive num and den, high = inf when den's CI reaches 0."""
    low = max(num - h_num, 0.0) / (den + h_den)
    high = (num + h_num) / (den - h_den) if den - h_den > 0 else math.inf
    return num / den, low, high


def _ties(days: list[EngineDay]) -> list[tuple[str, str]]:
    ties = []
    for a, b in pairwise(days):
        if a.energy_half_width_j is None or b.energy_half_width_j is None:
            continue
        if a.energy_j + a.energy_half_width_j >= b.energy_j - b.energy_half_width_j:
            ties.append((a.engine, b.engine))
    return ties

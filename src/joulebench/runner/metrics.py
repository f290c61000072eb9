"""Per-repeat metrics of a token-generation trial, from its windows and its responses.

Energy totals come from :mod:`joulebench.results.energy`, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from joulebench.measurement.records import StageResult
from joulebench.results.energy import component_energies, stage_items
from joulebench.results.stats import median_p90
from joulebench.runner.phases import Phases
from joulebench.runner.steady import SteadyWindow
from joulebench.store.rows import stored_itl
from joulebench.workloads.spec import Response


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def repeat_metrics(
    window: StageResult, responses: Sequence[Response], steady: SteadyWindow, steady_stage: StageResult | None
) -> dict[str, Any]:
    """Flat ``{metric: value}`` of one repeat; energy metrics are keyed ``<metric>.<component>``."""
    ok = [r for r in responses if r.error is None]
    tokens = sum(r.output_tokens for r in ok)
    duration = window.duration_s
    m: dict[str, Any] = {
        "duration_s": duration,
        "output_tokens": tokens,
        "n_requests": len(responses),
        "failed_requests": len(responses) - len(ok),
        "tokens_per_s": tokens / duration if duration > 0 else None,
        "ttft_s": _mean([r.ttft_s for r in ok if r.ttft_s is not None]),
        "tpot_s": _mean([r.tpot_s for r in ok if r.tpot_s is not None]),
        "itl_s": _mean([x for r in ok for x in stored_itl(r.itl_s)]),  # as stored, as the report reads it
    }
    m.update(energy_metrics(window, tokens, len(ok)))
    m["steady_available"] = steady.available
    m["steady_reason"] = steady.reason
    if steady.available and steady.duration_s:
        m["steady.duration_s"] = steady.duration_s
        m["steady.output_tokens"] = steady.output_tokens
        m["steady.tokens_interpolated"] = steady.tokens_interpolated
        m["steady.tokens_per_s"] = (steady.output_tokens or 0) / steady.duration_s
        if steady_stage is not None:
            m.update(steady_energy_metrics(steady_stage, steady.duration_s, steady.output_tokens))
    return m


def phase_metrics(
    phases: Phases, windows: Mapping[str, Sequence[StageResult]], responses: Sequence[Response]
) -> dict[str, Any]:
    """Prefill and decode of one repeat: seconds, energy per component (with its bound), J per prompt
    token (prefill) and J per output token after each request's first (decode)."""
    if not phases.available:
        return {"phases_available": False, "phases_reason": phases.reason}
    ok = [r for r in responses if r.error is None]
    m: dict[str, Any] = {
        "phases_available": True,
        "prefill.duration_s": Phases.seconds(phases.prefill),
        "decode.duration_s": Phases.seconds(phases.decode),
        # the first token of each request comes out of its prefill
        "decode.output_tokens": sum(r.output_tokens for r in ok) - len(ok),
    }
    if all(r.prompt_tokens for r in ok):
        m["prefill.prompt_tokens"] = sum(r.prompt_tokens or 0 for r in ok)
    m.update(phase_energy_metrics(windows, m))
    return m


#: a phase's per-token metric and the count it divides by
PHASE_DIVISORS = {"prefill": ("j_per_prompt_token", "prefill.prompt_tokens"),
                  "decode": ("j_per_token", "decode.output_tokens")}  # fmt: skip


def phase_energy_metrics(
    windows: Mapping[str, Sequence[StageResult]], counts: Mapping[str, Any]
) -> dict[str, Any]:
    """Each phase's energy per component over its spans, with its bound, and per token."""
    m: dict[str, Any] = {}
    for phase, pieces in windows.items():
        per, key = PHASE_DIVISORS[phase]
        count = counts.get(key)
        items = [item for w in pieces for item in stage_items(w)]
        for comp, (energy, _estimated, bound) in component_energies(items).items():
            m[f"{phase}.energy_j.{comp}"] = energy
            if bound is not None:
                m[f"bound.{phase}.energy_j.{comp}"] = bound
            if count:
                m[f"{phase}.{per}.{comp}"] = energy / count
                if bound is not None:
                    m[f"bound.{phase}.{per}.{comp}"] = bound / count
    return m


def request_energy_metrics(shares: Sequence[float | None]) -> dict[str, Any]:
    """The distribution of the requests' energy shares: median and 90th percentile (nearest rank)."""
    both = median_p90(shares)
    if both is None:
        return {}
    return {"request_energy_j.median": both[0], "request_energy_j.p90": both[1]}


def energy_metrics(window: StageResult, tokens: int, responses: int) -> dict[str, Any]:
    """A repeat's energy metrics per component (and ``estimated_components``): each energy over the
    window's duration, its output tokens and its successful responses, with the measurement's own bound
    (docs/counters.md) over the same divisors, apart from the spread between repeats."""
    duration = window.duration_s
    m: dict[str, Any] = {}
    estimated: list[str] = []
    for comp, (energy, is_est, bound) in component_energies(stage_items(window)).items():
        for prefix, value in (("", energy), ("bound.", bound)):
            if value is None:
                continue
            m[f"{prefix}energy_j.{comp}"] = value
            m[f"{prefix}power_w.{comp}"] = value / duration if duration > 0 else None
            m[f"{prefix}j_per_token.{comp}"] = value / tokens if tokens else None
            m[f"{prefix}j_per_response.{comp}"] = value / responses if responses else None
        if is_est:
            estimated.append(comp)
    m["estimated_components"] = estimated
    return m


def steady_energy_metrics(stage: StageResult, duration_s: float, tokens: float | None) -> dict[str, Any]:
    """Power and J/token of the steady-state window, per component."""
    m: dict[str, Any] = {}
    for comp, (energy, _, _) in component_energies(stage_items(stage)).items():
        m[f"steady.power_w.{comp}"] = energy / duration_s
        m[f"steady.j_per_token.{comp}"] = energy / tokens if tokens else None
    return m

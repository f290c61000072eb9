"""Every stored window computed again from its trial's own trace, by the accounting rule of this release.

A database written under an older rule (before docs/counters.md, or before bounds were stored) then holds
what this joulebench would have measured: each window's energy and its ``uncertainty_j``, and the energy
metrics of each repeat derived from them. What the run decided is kept as it was: the windows' times, the
idle baseline each row was compared with, the flags the runner and monitor added (``unfinished``,
``monitor-paused``, ...), token counts and timings. A trial without a trace keeps its rows. The
`joulebench roofline` rows are computed again the same way from their own traces.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from joulebench.measurement.accounting import ACCOUNTING_FLAGS, compute_window
from joulebench.measurement.monitor import Monitor
from joulebench.measurement.records import Component, StageResult
from joulebench.measurement.trace import parse_trace_lines
from joulebench.runner.metrics import (
    PHASE_DIVISORS,
    energy_metrics,
    phase_energy_metrics,
    request_energy_metrics,
    steady_energy_metrics,
)
from joulebench.runner.phases import request_energies
from joulebench.store.db import ResultsDB
from joulebench.store.rows import StageEnergyRow, stage_rows
from joulebench.workloads.spec import Response

GENERATE, STEADY = "generate", "steady"
NO_TRACE, UNMEASURED = "no trace", "unmeasured"  # why a roofline row kept its stored values


@dataclass(frozen=True)
class Recomputed:
    """What ``recompute`` did to one database."""

    trials: int  # trials whose windows were computed again
    without_trace: int  # finished trials that kept their rows: no trace to compute from
    windows: int
    largest_change: float  # the largest relative change of a measured energy, over every window
    roofline: int = 0  # roofline rows computed again
    roofline_without_trace: int = 0
    roofline_unmeasured: int = 0  # rows whose trace holds no counter reading of their card: kept


def recompute(db: ResultsDB, progress: Callable[[int, int], None] | None = None) -> Recomputed:
    """Compute every window of every trial that has a trace again, in one transaction per trial."""
    trials = [t for run in db.runs() for t in db.trials(run["id"]) if t["status"] == "ok"]
    done = without = windows = 0
    largest = 0.0
    for k, trial in enumerate(trials):
        if progress is not None:
            progress(k, len(trials))
        lines = db.trace(trial["id"])
        if not lines:
            without += 1
            continue
        monitor = Monitor.from_trace(f"trial {trial['id']}", parse_trace_lines(json.dumps(x) for x in lines))
        stored = db.stage_energy(trial["id"])
        groups: dict[tuple[str, float, float], list[dict[str, Any]]] = defaultdict(list)
        for row in stored:
            groups[(row["stage"], row["start_s"], row["end_s"])].append(row)
        rows: list[StageEnergyRow] = []
        results: dict[str, StageResult] = {}
        pieces: dict[str, list[StageResult]] = defaultdict(list)  # a stage in several spans (phases)
        for (stage, start, end), old in groups.items():
            result = _again(monitor, stage, start, end, old)
            if not result.components:
                rows.extend(_stored(r) for r in old)  # nothing measured then, nothing now: keep its times
                continue
            results[stage] = result
            pieces[stage].append(result)
            rows.extend(stage_rows(result))
            largest = max(largest, _change(old, result))
            windows += 1
        generate = next(((k, v) for k, v in groups.items() if k[0] == GENERATE), None)
        shares = None
        if generate is not None and GENERATE in results:
            shares = _request_energy(db.requests(trial["id"]), monitor, generate, results[GENERATE])
        db.replace_windows(trial["id"], rows, _details(trial, results, pieces, shares), shares)
        done += 1
    roofline = [_roofline_again(db, row) for row in db.roofline()]
    changes = [c for c in roofline if isinstance(c, float)]
    return Recomputed(
        done,
        without,
        windows,
        max([largest, *changes]),
        len(changes),
        roofline.count(NO_TRACE),
        roofline.count(UNMEASURED),
    )


def _roofline_again(db: ResultsDB, row: dict[str, Any]) -> float | str:
    """One roofline row's energy computed again from its trace, with the idle baseline it was compared
    with; its relative change, else why it was kept (:data:`NO_TRACE`, :data:`UNMEASURED`)."""
    lines = db.roofline_trace(row["id"])
    if not lines:
        return NO_TRACE
    monitor = Monitor.from_trace(f"roofline row {row['id']}", parse_trace_lines(json.dumps(x) for x in lines))
    key = (Component.GPU, str(row["device"]))
    idle = {} if row["idle_power_w"] is None else {key: float(row["idle_power_w"])}
    window = compute_window(monitor.log, f"roofline-{row['kernel']}", row["start_s"], row["end_s"], idle)
    part = next((c for c in window.components if (c.component, c.device) == key), None)
    if part is None or part.energy_j is None or part.estimated:
        return UNMEASURED
    kept = tuple(f for f in (row["flags"] or "").split(",") if f and not _ours(f))
    db.replace_roofline_energy(
        row["id"],
        {
            "energy_j": part.energy_j,
            "uncertainty_j": part.uncertainty_j,
            "above_idle_energy_j": part.above_idle_energy_j,
            "method": part.method.value,
            "flags": (*part.flags, *(f for f in kept if f not in part.flags)),
        },
    )
    was = float(row["energy_j"])
    return abs(part.energy_j - was) / abs(was) if was else 0.0


def _idle(old: list[dict[str, Any]]) -> dict[tuple[Component, str], float]:
    """The idle baseline each stored row of a window was compared with."""
    return {
        (Component(r["component"]), str(r["device"])): float(r["idle_power_w"])
        for r in old
        if r["idle_power_w"] is not None and r["component"] in {c.value for c in Component}
    }


def _again(monitor: Monitor, stage: str, start: float, end: float, old: list[dict[str, Any]]) -> StageResult:
    result = compute_window(monitor.log, stage, start, end, _idle(old))
    kept = {
        (r["component"], r["device"]): tuple(f for f in (r["flags"] or "").split(",") if f and not _ours(f))
        for r in old
    }
    extra = {f for flags in kept.values() for f in flags}
    components = tuple(
        replace(c, flags=(*c.flags, *kept.get((c.component.value, c.device), tuple(sorted(extra)))))
        for c in result.components
    )
    return replace(result, components=components)


def _request_energy(
    requests: list[dict[str, Any]],
    monitor: Monitor,
    generate: tuple[tuple[str, float, float], list[dict[str, Any]]],
    window: StageResult,
) -> dict[int, tuple[float | None, bool]] | None:
    """Each request's share of the repeat's new energy, by request index, where its times were stored
    (schema 3 on); ``None`` to keep the stored shares."""
    (_, begin, end), old = generate
    responses = [
        Response(
            index=int(r["request_index"]),
            output_tokens=int(r["output_tokens"]),
            submit_s=r.get("submit_s"),
            first_token_s=r.get("first_token_s"),
            finish_s=r.get("finish_s"),
            error=r.get("error"),
        )
        for r in requests
    ]
    if not any(r.error is None and r.submit_s is not None and r.finish_s is not None for r in responses):
        return None
    idle = _idle(old)
    got = request_energies(
        lambda name, a, b: compute_window(monitor.log, name, a, b, idle), responses, begin, end, window
    )
    if got is None:
        return None
    shares, estimated = got
    return {r.index: (share, estimated) for r, share in zip(responses, shares, strict=True)}


def _ours(flag: str) -> bool:
    """A flag the accounting sets (computed again), rather than one the runner or monitor added."""
    return flag in ACCOUNTING_FLAGS or flag.startswith("includes-")


def _stored(row: dict[str, Any]) -> StageEnergyRow:
    fields: dict[str, Any] = {k: row.get(k) for k in StageEnergyRow.__dataclass_fields__}
    fields["estimated"] = bool(row["estimated"])
    fields["flags"] = tuple(f for f in (row["flags"] or "").split(",") if f)
    return StageEnergyRow(**fields)


def _change(old: list[dict[str, Any]], result: StageResult) -> float:
    before = {(r["component"], r["device"]): r["energy_j"] for r in old}
    worst = 0.0
    for c in result.components:
        was: float | None = before.get((c.component.value, c.device))
        if was and c.energy_j is not None and not c.estimated:
            worst = max(worst, abs(c.energy_j - was) / abs(was))
    return worst


def _details(
    trial: dict[str, Any],
    results: dict[str, StageResult],
    pieces: dict[str, list[StageResult]],
    shares: dict[int, tuple[float | None, bool]] | None,
) -> dict[str, Any]:
    """The trial's details with its repeat's energy metrics derived again from the new windows."""
    details = dict(trial.get("details") or {})
    metrics = details.get("metrics")
    window = results.get(GENERATE)
    if not isinstance(metrics, dict) or window is None:
        return details
    energy_keys = ("energy_j.", "power_w.", "j_per_token.", "j_per_response.", "bound.", "steady.power_w.")
    phase_keys = tuple(
        f"{phase}.{what}." for phase, (per, _) in PHASE_DIVISORS.items() for what in ("energy_j", per)
    )
    metrics = {
        k: v
        for k, v in metrics.items()
        if not k.startswith((*energy_keys, "steady.j_per_token.", *phase_keys))
        and not (shares is not None and k.startswith("request_energy_j."))
    }
    tokens = int(metrics.get("output_tokens") or 0)
    responses = int(metrics.get("n_requests") or 0) - int(metrics.get("failed_requests") or 0)
    metrics.update(energy_metrics(window, tokens, responses))
    steady = results.get(STEADY)
    duration = metrics.get("steady.duration_s")
    if steady is not None and metrics.get("steady_available") and duration:
        metrics.update(steady_energy_metrics(steady, float(duration), metrics.get("steady.output_tokens")))
    if metrics.get("phases_available"):
        phases = {p: pieces[p] for p in PHASE_DIVISORS if pieces.get(p)}
        metrics.update(phase_energy_metrics(phases, metrics))
    if shares is not None:
        metrics.update(request_energy_metrics([share for share, _ in shares.values()]))
    details["metrics"] = metrics
    return details

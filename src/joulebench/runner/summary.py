"""A run's summary, computed from what the database holds (so it is the same live and after the fact):
setup stages (duration, energy per component) and per-repeat generation metrics, each as mean, standard
deviation, 95 % CI and CV with the stability verdict."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from joulebench.engines.base import STAGE_WARMUP
from joulebench.measurement.fixes import Fix, for_estimates
from joulebench.results.energy import (
    TOTAL,
    TOTAL_INCL_ESTIMATED,
    component_energies,
    headline_key,
    ran_paused,
    row_items,
    totals_hold,
)
from joulebench.results.floor import floor_summary, run_floor
from joulebench.results.stats import summarize
from joulebench.store.db import ResultsDB

#: Metrics whose stability verdict is shown as a warning (the first present J/token, then throughput).
KEY_METRICS = (
    f"j_per_token.{TOTAL}",
    f"j_per_token.{TOTAL_INCL_ESTIMATED}",
    "j_per_token.gpu",
    "tokens_per_s",
)


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def engine_caveats(trials: list[dict[str, Any]]) -> list[str]:
    """What the engine said of its own results when it started (EngineInfo ``details["caveats"]``, e.g. a
    seed it ignores), once each, in the order first said."""
    out: list[str] = []
    for t in trials:
        info = (t.get("details") or {}).get("engine_info") or {}
        for caveat in (info.get("details") or {}).get("caveats") or []:
            if caveat not in out:
                out.append(str(caveat))
    return out


def _setup(windows: Mapping[int, list[dict[str, Any]]], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The setup trials' stages: time and energy per component over the trials (``windows``: each trial's
    stored windows, by trial id, read once for this and :func:`_setup_by_factors`)."""
    durations: dict[str, list[float]] = defaultdict(list)
    energies: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bounds: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    estimated: set[str] = set()
    ok = [t for t in trials if t["status"] == "ok"]
    for t in ok:
        by_stage: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in windows[t["id"]]:
            by_stage[row["stage"]].append(row)
        for stage, rows in by_stage.items():
            # An engine may report one stage in pieces (vLLM's engine_init): each piece is a window, and
            # the stage's duration and energies are the sums over its pieces (as in the report). A
            # component unmeasured in any piece is left out of the stage rather than undercounted.
            durations[stage].append(
                sum(end - start for start, end in {(r["start_s"], r["end_s"]) for r in rows})
            )
            for comp, (energy, est, bound) in component_energies(row_items(rows)).items():
                energies[stage][comp].append(energy)
                bounds[stage][comp].append(bound)
                if est:
                    estimated.add(comp)
    return {
        "trials": len(trials),
        "ok": len(ok),
        "cache_state": [t["cache_state"] for t in trials],
        "compile_cache": [t["compile_cache"] for t in trials],
        "estimated_components": sorted(estimated),
        "stages": {
            stage: {
                "duration_s": summarize(durations[stage]).to_dict(),
                "energy_j": {c: summarize(v).to_dict() for c, v in energies[stage].items()},
                # the mean of the trials' measurement bounds, where every trial states one
                "bound_j": {c: _mean_bound(v) for c, v in bounds[stage].items()},
            }
            for stage in durations
        },
    }


def _setup_by_factors(
    windows: Mapping[int, list[dict[str, Any]]], trials: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The setup trials of each combination of setup-factor levels apart (`run --setup-factors`), in the
    order they ran; [] for a run without factors."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        factors = (t.get("details") or {}).get("factors")
        if factors:
            levels = {k: v for k, v in factors.items() if k != "compile_cache_empty"}
            groups.setdefault(json.dumps(levels, sort_keys=True), []).append(t)
    return [{"factors": json.loads(key), **_setup(windows, group)} for key, group in groups.items()]


def _lifecycle(db: ResultsDB, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each state of the warm engine after its repeats (parked; asleep at a level), its stages' time and
    energy above idle (the measured total, else the estimated one, said so) over its trials."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        if t["status"] == "ok" and t["kind"] in ("park", "sleep"):
            level = (t.get("details") or {}).get("level")
            groups.setdefault("parked" if t["kind"] == "park" else f"asleep, level {level}", []).append(t)
    out = []
    for state, group in groups.items():
        durations: dict[str, list[float]] = defaultdict(list)
        above: dict[str, list[float]] = defaultdict(list)
        estimated = False
        for t in group:
            by_stage: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in db.stage_energy(t["id"]):
                by_stage[row["stage"]].append(row)
            for stage, rows in by_stage.items():
                durations[stage].append(rows[0]["end_s"] - rows[0]["start_s"])
                energy, guessed = _above_idle(rows)
                if energy is not None:
                    above[stage].append(energy)
                    estimated = estimated or guessed
        stages = {stage: _held(durations[stage], above[stage]) for stage in durations}
        out.append({"state": state, "trials": len(group), "estimated": estimated, "stages": stages})
    return out


def _above_idle(rows: list[dict[str, Any]]) -> tuple[float | None, bool]:
    """A window's energy above idle, the measured total else the estimated one, and whether estimated."""
    energies = component_energies(row_items(rows, "above_idle_energy_j"))
    key = headline_key(energies)
    return (None, False) if key is None else (energies[key][0], key == TOTAL_INCL_ESTIMATED)


def _held(durations: list[float], above: list[float]) -> dict[str, Any]:
    if len(above) != len(durations):  # a trial without a baseline: no above-idle figure for the stage
        above = []
    return {
        "duration_s": summarize(durations).to_dict(),
        "above_idle_j": summarize(above).to_dict() if above else None,
        "above_idle_w": summarize([e / d for e, d in zip(above, durations, strict=True) if d > 0]).to_dict()
        if above
        else None,
    }


def _mean_bound(values: list[float | None]) -> float | None:
    # |mean measured - mean true| <= mean of the bounds, since each trial is within its own
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def _generation(trials: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [t for t in trials if t["status"] == "ok"]
    values: dict[str, list[float]] = defaultdict(list)
    estimated: set[str] = set()
    steady_reasons: set[str] = set()
    for t in ok:
        metrics = (t.get("details") or {}).get("metrics", {})
        estimated.update(metrics.get("estimated_components", []))
        if not metrics.get("steady_available") and metrics.get("steady_reason"):
            steady_reasons.add(metrics["steady_reason"])
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[key].append(float(value))
    return {
        "repeats": len(trials),
        "ok": len(ok),
        "estimated_components": sorted(estimated),
        "steady_unavailable": sorted(steady_reasons),
        "metrics": {k: summarize(v).to_dict() for k, v in sorted(values.items())},
    }


def _warmups(db: ResultsDB, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each measured warm-up batch (one per engine start): its time, tokens and energy by component."""
    out = []
    for t in trials:
        rows = [r for r in db.stage_energy(t["id"]) if r["stage"] == STAGE_WARMUP]
        details = t.get("details") or {}
        if t["status"] != "ok" or not rows:
            continue
        energies = component_energies(row_items(rows))
        tokens = details.get("warmup_output_tokens")
        # the measured total; where nothing is measured, the estimated one, said so
        key = headline_key(energies)
        total = energies[key] if key else None
        out.append(
            {
                "before_repeat": t["repeat_index"],
                "duration_s": details.get("warmup_duration_s"),
                "output_tokens": tokens,
                "energy_j": {c: e for c, (e, _, _) in energies.items()},
                "j_per_token": total[0] / tokens if total and tokens else None,
                "estimated": bool(total and total[1]),
            }
        )
    return out


def _overhead(monitored: dict[str, Any], paused: dict[str, Any]) -> dict[str, Any] | None:
    """Throughput of the repeats with the sampler paused against the measured ones of the same engine."""
    on, off = monitored["metrics"].get("tokens_per_s"), paused["metrics"].get("tokens_per_s")
    if not on or not off or not off.get("mean"):
        return None
    return {
        "tokens_per_s_monitored": on,
        "tokens_per_s_unmonitored": off,
        "throughput_cost": (off["mean"] - on["mean"]) / off["mean"],
    }


def _energy_words(
    sources: list[dict[str, Any]], setup: dict[str, Any], generation: dict[str, Any]
) -> dict[str, Any]:
    """What the totals hold, how each estimate was made, and what would measure the estimated parts."""
    components = {k.split(".", 1)[1] for k in generation["metrics"] if k.startswith("j_per_token.")}
    for stage in setup["stages"].values():
        components.update(stage["energy_j"])
    estimated = set(setup["estimated_components"]) | set(generation["estimated_components"])
    estimates = [s["reason"] for s in sources if s.get("estimated") and s.get("available")]
    # what would measure, instead, the components that were estimated
    unreadable = [
        (s["name"], Fix(s["fix"]["why"], tuple(s["fix"]["commands"]))) for s in sources if s.get("fix")
    ]
    fixes = [f"{name}: {fix.line()}" for name, fix in for_estimates(unreadable, estimated)]
    return {"totals_hold": totals_hold(components, estimated), "estimates": estimates, "fixes": fixes}


def summarize_run(db: ResultsDB, run_id: int) -> dict[str, Any]:
    """Everything `joulebench run` prints at the end (and emits with ``--json``)."""
    run = db.run(run_id)
    trials = db.trials(run_id)
    env = run.get("environment") or {}
    config = run.get("config") or {}
    measured: list[dict[str, Any]] = []
    paused: list[dict[str, Any]] = []
    # warm-ups are trials of their own; runs stored before that carry each in its repeat's trial
    warm = [t for t in trials if t["kind"] in ("warmup", "generation")]
    for t in trials:
        if t["kind"] == "generation":
            (paused if ran_paused(config, t.get("details") or {}) else measured).append(t)
    generation = _generation(measured)
    generation["warmups"] = _warmups(db, sorted(warm, key=lambda t: t["repeat_index"]))
    generation["monitor_overhead"] = _overhead(generation, _generation(paused)) if paused else None
    warnings = []
    if env.get("energy_note"):
        warnings.append(env["energy_note"])
    for t in trials:
        busy = (t.get("details") or {}).get("idle_busy") if t["kind"] == "idle" else None
        if busy:
            warnings.append(busy)
    warnings += engine_caveats(trials)
    j_per_token_seen = False
    for key in KEY_METRICS:
        stat = generation["metrics"].get(key)
        if not stat or (key.startswith("j_per_token") and j_per_token_seen):
            continue  # one J/token verdict (the first present) is enough
        j_per_token_seen = j_per_token_seen or key.startswith("j_per_token")
        if stat["warning"]:
            warnings.append(f"{key}: {stat['warning']}")
    setup_trials = [t for t in trials if t["kind"] == "setup"]
    windows = {t["id"]: db.stage_energy(t["id"]) for t in setup_trials if t["status"] == "ok"}
    setup = _setup(windows, setup_trials)
    setup["by_factors"] = _setup_by_factors(windows, setup_trials)
    generation["lifecycle"] = _lifecycle(db, trials)
    gpu = generation["metrics"].get("j_per_token.gpu")
    floor = floor_summary(run_floor(run, db.roofline()), gpu["mean"] if gpu else None)
    failures = [
        {"kind": t["kind"], "repeat_index": t["repeat_index"], "error": _first_line(t["error"])}
        for t in trials
        if t["status"] != "ok"
    ]
    return {
        "run_id": run_id,
        "status": run["status"],
        "engine": run["engine"],
        "engine_version": run["engine_version"],
        "model": run["model"],
        "model_label": run["model_label"],
        "workload": run["workload"],
        "batch_size": run["batch_size"],
        "output_tokens": run["output_tokens"],
        "length_mode": run["length_mode"],
        "device": run["device"],
        "energy_sources": env.get("energy_sources", []),
        **_energy_words(env.get("energy_sources", []), setup, generation),
        "setup": setup,
        "generation": generation,
        "failures": failures,
        "warnings": warnings,
        "floor": floor,
    }

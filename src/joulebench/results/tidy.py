"""Per-trial metrics derived from stored windows: the tidy frame that every table, figure, the advisor and
``joulebench run``'s summary check use (``trial_metrics``).

Definitions (docs/report.md): J/token = energy of the ``generate`` window / output tokens of the trial;
J/response = that energy / successful requests; W = energy / window duration; tokens/s = output
tokens / duration; TTFT and TPOT = means over the trial's requests. The *measured total* is the node
when the node is measured, otherwise the sum of the measured gpu, cpu and dram; estimated components
are never part of it and appear, labelled, only in ``total_incl_estimated``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joulebench.errors import require
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED, component_energies, ran_paused, row_items
from joulebench.results.floor import RunFloor, pct_of_floor, run_floor
from joulebench.results.stats import median_p90
from joulebench.store.rows import sleep_kind

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from joulebench.store.frames import Frames

PARTS = ("gpu", "cpu", "dram")
COMPONENTS = ("gpu", "cpu", "dram", "other", "node", "platform")
# a setup trial's parts in the order they happen: the runner's process spawn, then the engine's stages
SETUP_PARTS = ("spawn", "import", "engine_init", "model_load", "first_token")
GENERATE = "generate"
STEADY = "steady"  # the batch fully occupied (runner/steady.py); its tokens come from the trial's details
WARMUP = "warmup"  # the batch before an engine start's first repeat; its tokens come from the trial's details
PREFILL = "prefill"  # a repeat's spans with a request in prefill (runner/phases.py): per prompt token
DECODE = "decode"  # its spans with every request decoding: per output token after each request's first
# a whole setup, and a warm engine parked, put to sleep, held asleep, woken (docs/lifecycle.md): what they
# cost above idle, which `advise --policy` weighs against each other
ABOVE_IDLE_STAGES = ("setup", "park", "sleep_enter", "sleep", "wake")

UNITS = {
    "energy_j": "J",
    "power_w": "W",
    "duration_s": "s",
    "j_per_token": "J/token",
    "j_per_response": "J/response",
    "j_per_prompt_token": "J/token",
    "request_energy_median_j": "J",
    "request_energy_p90_j": "J",
    "above_idle_energy_j": "J",
    "above_idle_power_w": "W",
    "floor_j_per_token": "J/token",
    "pct_of_floor": "%",
    "tokens_per_s": "tokens/s",
    "ttft_s": "s",
    "tpot_s": "s",
    "itl_s": "s",
    "output_tokens": "tokens",
    "n_requests": "requests",
    "output_tokens_per_response": "tokens/response",
}

COLUMNS = [
    "run_id",
    "trial_id",
    "kind",
    "repeat_index",
    "engine",
    "model",
    "workload",
    "batch_size",
    "max_output_tokens",
    "stage",
    "component",
    "estimated",
    "method",
    "metric",
    "unit",
    "value",
    "uncertainty",  # the measurement's own bound on value (docs/counters.md); NaN where none is stated
    "model_free",  # a setup stage that does not depend on the model, for this engine: pooled over models
]


@dataclass(frozen=True)
class _Energy:
    energy_j: float
    estimated: bool
    method: str
    uncertainty_j: float | None


def tidy_trial_metrics(frames: Frames) -> pd.DataFrame:
    """One row per (finished trial, stage, component, metric); component is "" for non-energy metrics."""
    pd = require("pandas", extra="report")
    runs = {int(r["id"]): r for r in frames.runs.to_dict("records")}
    configs = {run_id: _config(r) for run_id, r in runs.items()}
    labels = workload_labels(frames.runs)
    engines = engine_labels(frames.runs)
    setup_engines = _setup_engine_labels(frames, engines)
    windows: dict[int, dict[str, list[dict[str, object]]]] = defaultdict(lambda: defaultdict(list))
    for row in frames.stage_energy.to_dict("records"):
        windows[int(row["trial_id"])][str(row["stage"])].append(row)
    requests: dict[int, list[dict[str, object]]] = defaultdict(list)
    for row in frames.requests.to_dict("records"):
        requests[int(row["trial_id"])].append(row)

    roofline = frames.roofline.to_dict("records") if frames.roofline is not None else []
    floors = {run_id: run_floor(r, roofline) for run_id, r in runs.items()} if roofline else {}
    trials = frames.trials.to_dict("records")
    # the idle baseline of a run that measured nothing it was taken for (every setup trial and repeat failed)
    # stays in the database but out of the idle statistics: whatever stopped the engine often held the
    # device during the baseline too (another process's memory and work)
    measured = {int(t["run_id"]) for t in trials if t["kind"] != "idle" and t["status"] == "ok"}
    attempted = {int(t["run_id"]) for t in trials if t["kind"] != "idle"}
    out: list[dict[str, object]] = []
    for trial in trials:
        if trial["status"] != "ok":
            continue
        if trial["kind"] == "idle" and int(trial["run_id"]) in attempted - measured:
            continue
        run = runs[int(trial["run_id"])]
        details = trial_details(trial)
        engine = setup_engines.get(int(trial["id"]), engines[int(run["id"])])
        base = {
            "run_id": int(run["id"]),
            "trial_id": int(trial["id"]),
            "kind": _kind(str(trial["kind"]), details),
            "repeat_index": int(trial["repeat_index"]),
            "engine": repeat_engine_label(engine, configs[int(run["id"])], details),
            "model": model_label(run),
            "workload": labels[int(run["id"])],
            "batch_size": int(run["batch_size"]),
            "max_output_tokens": int(run["output_tokens"]),
        }
        free = model_free_stages(str(run["engine"])) if trial["kind"] == "setup" else ()
        for stage, rows in sorted(windows[int(trial["id"])].items()):
            found = _stage_rows(base, stage, rows, trial, details, requests[int(trial["id"])])
            out += [{**r, "model_free": stage in free} for r in found]
        if trial["kind"] == "generation" and (floor := floors.get(int(run["id"]))) is not None:
            out += _floor_rows(out, int(trial["id"]), floor)
    return pd.DataFrame(out, columns=COLUMNS)


def _floor_rows(rows: list[dict[str, object]], trial_id: int, floor: RunFloor) -> list[dict[str, object]]:
    """The trial's GPU J/token against the floor of its card (docs/roofline.md)."""
    measured = next(
        (
            r
            for r in rows
            if r["trial_id"] == trial_id
            and r["stage"] == GENERATE
            and r["component"] == "gpu"
            and r["metric"] == "j_per_token"
        ),
        None,
    )
    if measured is None:
        return []
    base = {k: measured[k] for k in COLUMNS[:9]}
    value = float(measured["value"])  # type: ignore[arg-type]
    return [
        _row(base, GENERATE, "gpu", False, "", "floor_j_per_token", floor.floor.j_per_token,
             floor.floor.bound_j_per_token),
        _row(base, GENERATE, "gpu", False, "", "pct_of_floor", pct_of_floor(value, floor.floor)),
    ]  # fmt: skip


def phase_kind(kind: str) -> str:
    """A trial's kind in the report: a warm-up, stored as a trial of its own, is the generation phase's
    ``warmup`` stage, as it was when runs stored it inside its repeat's trial."""
    return "generation" if kind == "warmup" else kind


def model_free_stages(engine: str) -> tuple[str, ...]:
    """The setup stages of ``engine`` that do not depend on the model (its trait; the paper's import and
    engine initialisation for an engine this release does not know)."""
    from joulebench.engines.base import MODEL_FREE_STAGES
    from joulebench.engines.registry import get_engine_class
    from joulebench.errors import UsageError

    try:
        return tuple(get_engine_class(engine).model_free_stages)
    except UsageError:
        return MODEL_FREE_STAGES


def stage_holds(engine_label: str) -> Mapping[str, str]:
    """:attr:`Engine.stage_holds` of the engine a report label names (``tensorrt-llm:backend=tensorrt``,
    ``vllm (cold compile cache)``); none for an engine this release does not know."""
    from joulebench.engines.registry import get_engine_class
    from joulebench.errors import UsageError

    name = engine_label.split(" (")[0].split(":")[0]
    try:
        return get_engine_class(name).stage_holds
    except UsageError:
        return {}


def _kind(kind: str, details: dict[str, Any]) -> str:
    """:func:`phase_kind`, and a sleep trial's level: ``sleep-1``, ``sleep-2`` are different experiments."""
    return sleep_kind(details["level"]) if kind == "sleep" and "level" in details else phase_kind(kind)


def model_label(run: dict[str, object]) -> str:
    label = run.get("model_label")
    return str(label) if label is not None and not _isnan(label) and str(label) else str(run["model"])


def engine_labels(runs: pd.DataFrame) -> dict[int, str]:
    """Engine names that keep apart runs of one engine set up differently: ``engine:label`` where the run
    has a label (a sweep entry's variant), else the settings that differ from a plain run (tensor
    parallelism, no monitoring, engine options), e.g. ``vllm:tp2`` or ``transformers:unmonitored``."""
    labels = {}
    for r in runs.to_dict("records"):
        config = _config(r)
        label = config.get("label")
        if not label:
            quals = [f"tp{r['tensor_parallel']}"] if int(r.get("tensor_parallel") or 1) > 1 else []
            quals += ["unmonitored"] if config.get("monitor") is False else []
            quals += [f"{k}={v}" for k, v in sorted((config.get("engine_options") or {}).items())]
            label = ",".join(quals)
        labels[int(r["id"])] = f"{r['engine']}:{label}" if label else str(r["engine"])
    return labels


def repeat_engine_label(engine: str, config: dict[str, Any], details: dict[str, Any]) -> str:
    """A trial's engine name: its run's (:func:`engine_labels`), with ``:unmonitored`` for a repeat run with
    the sampler paused inside a monitored run, whose throughput beside the measured ones is the monitor's
    cost."""
    return engine + (":unmonitored" if ran_paused(config, details) else "")


CACHE_NAMES = (("compile_cache", "compile cache"), ("cache_state", "page cache"))


def _setup_engine_labels(frames: Frames, engines: dict[int, str]) -> dict[int, str]:
    """Setup trials of one engine and model that ran with cold and with warm caches are different
    experiments (a cold compile cache can triple vLLM's setup): where both occur, the cache state joins
    the engine's name, e.g. ``vllm (cold compile cache)``. Keyed by trial id."""
    runs = {int(r["id"]): r for r in frames.runs.to_dict("records")}
    setup = [t for t in frames.trials.to_dict("records") if t["kind"] == "setup"]
    states: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    levels = {int(t["id"]): _other_factors(t) for t in setup}
    for t in setup:
        run = runs[int(t["run_id"])]
        seen = states[(engines[int(run["id"])], model_label(run))]
        for col in ("compile_cache", "cache_state"):
            seen[col].add(str(t.get(col)))
        for name in {n for f in levels.values() for n in f}:  # a factor some trial had, absent: its default
            seen[name].add(levels[int(t["id"])].get(name, "default"))
    out = {}
    for t in setup:
        run = runs[int(t["run_id"])]
        engine = engines[int(run["id"])]
        seen = states[(engine, model_label(run))]
        parts = [f"{t[col]} {name}" for col, name in CACHE_NAMES if len(seen[col]) > 1]
        given = levels[int(t["id"])]
        parts += [f"{n}={given.get(n, 'default')}" for n in sorted(seen) if n not in dict(CACHE_NAMES)
                  and len(seen[n]) > 1]  # fmt: skip
        out[int(t["id"])] = f"{engine} ({', '.join(parts)})" if parts else engine
    return out


def _other_factors(trial: dict[str, object]) -> dict[str, str]:
    """The setup factors a trial was given beyond the caches, whose states the probes record
    (`run --setup-factors`: the weight loader, CUDA graphs)."""
    factors = trial_details(trial).get("factors") or {}
    caches = ("page_cache", "compile_cache", "compile_cache_empty")
    return (
        {str(k): str(v) for k, v in factors.items() if k not in caches} if isinstance(factors, dict) else {}
    )


def restart_setup_label(engine: str, labels: set[str]) -> str:
    """The setup trials that stand for ``engine``'s restarts: its own, or where the report split them by
    cache state (``vllm (warm compile cache)``), the warm ones: a restarted server finds its caches filled."""
    if engine in labels:
        return engine
    split = sorted(x for x in labels if x.startswith(f"{engine} ("))
    # the states _setup_engine_labels names: "<state> compile cache", "<state> page cache"
    not_warm = [f"{state} {name}" for state in ("cold", "partial") for _, name in CACHE_NAMES]
    warm = [x for x in split if not any(s in x for s in not_warm)]
    return (warm or split or [engine])[0]


def _config(run: dict[str, object]) -> dict[str, Any]:
    text = run.get("config_json")
    if not isinstance(text, str):
        return {}
    try:
        config = json.loads(text)
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def workload_labels(runs: pd.DataFrame) -> dict[int, str]:
    """Workload names, with batch size and output tokens added where one name was run in several shapes."""
    shapes: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for r in runs.to_dict("records"):
        shapes[str(r["workload"])].add((int(r["batch_size"]), int(r["output_tokens"])))
    labels = {}
    for r in runs.to_dict("records"):
        name = str(r["workload"])
        many = len(shapes[name]) > 1
        labels[int(r["id"])] = f"{name} (bs {r['batch_size']}, {r['output_tokens']} tok)" if many else name
    return labels


def _stage_rows(
    base: dict[str, object],
    stage: str,
    rows: list[dict[str, object]],
    trial: dict[str, object],
    details: dict[str, Any],
    requests: list[dict[str, object]],
) -> list[dict[str, object]]:
    # A stage may come in several spans (vLLM initialises before and after it reads the weights): its
    # duration is the sum of its spans, as its energy is, not the interval that covers them.
    spans = {(_f(r["start_s"]), _f(r["end_s"])) for r in rows}
    duration_s = float(sum(end - start for start, end in spans))
    energies = _component_energies(rows)
    out = [_row(base, stage, "", False, "", "duration_s", duration_s)]
    per_token = per_response = None
    metric_per_token = "j_per_token"
    if stage == GENERATE:
        tokens = _num(trial.get("output_tokens"))  # the successful requests' tokens
        n_req = _num(trial.get("n_requests"))
        if n_req is None and requests:
            n_req = float(len(requests))
        # Per response means per successful response, as in the runner's summary: failed requests
        # produced no response and their tokens are not in the trial's count.
        n_ok = float(len([r for r in requests if _ok(r)])) if requests else n_req
        per_token = tokens if tokens else None
        per_response = n_ok if n_ok else None
        out += _generation_rows(base, tokens, n_req, n_ok, duration_s, requests)
        out += _request_energy_rows(base, requests, details)
    elif stage in (PREFILL, DECODE):
        ok = [r for r in requests if _ok(r)]
        if stage == PREFILL:
            prompts = [_num(r.get("prompt_tokens")) for r in ok]
            count = sum(p for p in prompts if p) if ok and all(prompts) else None
        else:
            count = sum(_num(r.get("output_tokens")) or 0.0 for r in ok) - len(ok) if ok else None
        if count:
            per_token = count
            metric_per_token = "j_per_prompt_token" if stage == PREFILL else "j_per_token"
    elif stage in (STEADY, WARMUP):
        tokens = _num(_steady_tokens(details) if stage == STEADY else details.get("warmup_output_tokens"))
        per_token = tokens if tokens else None
        if tokens and stage == WARMUP:  # a warm-up may be cut short: its length is part of the comparison
            out.append(_row(base, stage, "", False, "", "output_tokens", tokens))
        if tokens and duration_s > 0:
            out.append(_row(base, stage, "", False, "", "tokens_per_s", tokens / duration_s))
    for component, e in energies.items():
        # each metric is the energy over one divisor, and so is its bound
        divisors = {"energy_j": 1.0}
        if duration_s > 0:
            divisors["power_w"] = duration_s
        if per_token:
            divisors[metric_per_token] = per_token
        if per_response:
            divisors["j_per_response"] = per_response
        for metric, divisor in divisors.items():
            bound = e.uncertainty_j / divisor if e.uncertainty_j is not None else None
            out.append(
                _row(base, stage, component, e.estimated, e.method, metric, e.energy_j / divisor, bound)
            )
    if stage in ABOVE_IDLE_STAGES:
        out += _above_idle_rows(base, stage, rows, duration_s)
    return out


def _above_idle_rows(
    base: dict[str, object], stage: str, rows: list[dict[str, object]], duration_s: float
) -> list[dict[str, object]]:
    """Energy and power above the idle baseline, per component and total: what a parked or sleeping engine
    costs beyond the machine being on. Its bound is the window's (the baseline's own error not added)."""
    out = []
    for component, (energy, estimated, bound) in component_energies(
        row_items(rows, "above_idle_energy_j")
    ).items():
        method = "estimated" if estimated else ""
        out.append(_row(base, stage, component, estimated, method, "above_idle_energy_j", energy, bound))
        if duration_s > 0:
            b = None if bound is None else bound / duration_s
            out.append(
                _row(base, stage, component, estimated, method, "above_idle_power_w", energy / duration_s, b)
            )
    return out


def trial_details(trial: dict[str, object]) -> dict[str, Any]:
    """A trial row's ``details_json`` as a dict (empty where absent or unreadable)."""
    text = trial.get("details_json")
    try:
        details = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _steady_tokens(details: dict[str, Any]) -> object:
    metrics = details.get("metrics")
    return metrics.get("steady.output_tokens") if isinstance(metrics, dict) else None


def _generation_rows(
    base: dict[str, object],
    tokens: float | None,
    n_req: float | None,
    n_ok: float | None,
    duration_s: float,
    requests: list[dict[str, object]],
) -> list[dict[str, object]]:
    values: dict[str, float | None] = {"output_tokens": tokens, "n_requests": n_req}
    if tokens is not None and duration_s > 0:
        values["tokens_per_s"] = tokens / duration_s
    if tokens is not None and n_ok:
        values["output_tokens_per_response"] = tokens / n_ok
    ok = [r for r in requests if _ok(r)]
    for metric in ("ttft_s", "tpot_s"):
        vals = [v for v in (_num(r.get(metric)) for r in ok) if v is not None]
        values[metric] = sum(vals) / len(vals) if vals else None
    # ITL: the mean over every gap of every successful request, as the runner's summary takes it
    gaps = [g for r in ok for g in _gaps(r.get("itl_json"))]
    values["itl_s"] = sum(gaps) / len(gaps) if gaps else None
    return [_row(base, GENERATE, "", False, "", m, v) for m, v in values.items() if v is not None]


def _request_energy_rows(
    base: dict[str, object], requests: list[dict[str, object]], details: dict[str, Any]
) -> list[dict[str, object]]:
    """The median and 90th percentile of the requests' energy shares (runner/phases.py), from their rows;
    a database of schema 2, read as it is, kept them in the trial's details."""
    known = [r for r in requests if _num(r.get("energy_j")) is not None]
    values = [_num(r.get("energy_j")) for r in known]
    estimated = any(bool(_num(r.get("energy_estimated"))) for r in known)
    if not known and isinstance(details.get("request_energy_j"), dict):
        values = [_num(v) for v in details["request_energy_j"].values()]
        estimated = bool(details.get("request_energy_estimated"))
    both = median_p90(values)
    if both is None:
        return []
    method = "estimated" if estimated else ""
    return [
        _row(base, GENERATE, "", estimated, method, metric, value)
        for metric, value in zip(("request_energy_median_j", "request_energy_p90_j"), both, strict=True)
    ]


def _gaps(raw: object) -> list[float]:
    if not isinstance(raw, str) or not raw:
        return []
    try:
        values = json.loads(raw)
    except ValueError:
        return []
    return [float(v) for v in values if isinstance(v, (int, float))] if isinstance(values, list) else []


def _component_energies(rows: list[dict[str, object]]) -> dict[str, _Energy]:
    """The runner's energies and totals (one definition for both), with how each was obtained."""
    energies = component_energies(row_items(rows))
    measured = [c for c in PARTS if c in energies and not energies[c][1]]
    out: dict[str, _Energy] = {}
    for comp, (energy, estimated, bound) in energies.items():
        if comp == TOTAL:
            method = "node" if "node" in energies and not energies["node"][1] else "+".join(measured)
        elif comp == TOTAL_INCL_ESTIMATED:
            method = "+".join(c for c in PARTS if c in energies)
        else:
            use = [r for r in rows if r["component"] == comp and r["device"] == "all"]
            use = use or [r for r in rows if r["component"] == comp]
            method = "+".join(sorted({str(r["method"]) for r in use}))
        out[comp] = _Energy(energy, estimated, method, bound)
    return out


def _row(
    base: dict[str, object],
    stage: str,
    component: str,
    estimated: bool,
    method: str,
    metric: str,
    value: float,
    uncertainty: float | None = None,
) -> dict[str, object]:
    return {
        **base,
        "stage": stage,
        "component": component,
        "estimated": estimated,
        "method": method,
        "uncertainty": float("nan") if uncertainty is None else uncertainty,
        "metric": metric,
        "unit": UNITS[metric],
        "value": float(value),
        "model_free": False,
    }


def _ok(request: dict[str, object]) -> bool:
    error = request.get("error")
    return not error or _isnan(error)


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _num(value: object) -> float | None:
    if value is None or _isnan(value):
        return None
    return float(value)  # type: ignore[arg-type]


def _f(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


#: the name the report, the advisor and the study scripts call it by
trial_metrics = tidy_trial_metrics

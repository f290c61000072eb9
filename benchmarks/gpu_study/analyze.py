"""The study's own checks, computed from a results folder's merged database (``study.db``, made by
``joulebench db merge`` of its raw databases and ``joulebench db recompute``: rederive.py) and written
to ``analysis.json`` beside it:

    python benchmarks/gpu_study/analyze.py docs/results/h100x4-2026-11-26 [--superseded DIR]

- ``generation``: per engine (as the report labels it), model and workload, the runner's per-repeat GPU
  J/token, tokens/s, GPU power, TTFT and ITL, and the steady-state J/token: mean, 95 % CI, CV.
- ``setup``: the report's setup figures per engine and model (cold- and warm-cache setups apart): latency,
  GPU energy and mean GPU power of each stage, and each setup trial's length.
- ``monitor_overhead``: throughput of the repeats run with the sampler paused (or of an unmonitored twin
  run) against the measured ones of the same engine and cell; for paused repeats also the paired cost,
  each against the measured repeat just before it.
- ``pooled_runs``: for a cell whose repeats come from several runs, each run's own figures.
- ``counter_vs_timeline``: per generation repeat, the NVML energy counter's window energy against the
  trapezoid integral of the power timeline stored in the trial's trace.
- ``first_repeat``: with ``--superseded DIR``, the first repeat's duration over the mean of the later ones,
  in the gzipped databases found there (runs warmed up with a short batch).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from joulebench.results import crosscheck
from joulebench.results.aggregate import summarize_metrics
from joulebench.results.stats import summarize
from joulebench.results.tidy import engine_labels, model_label, repeat_engine_label, trial_metrics
from joulebench.store.frames import load_frames, parse_run_filter

GENERATION_METRICS = {
    "j_per_token": "j_per_token.gpu",
    "j_per_response": "j_per_response.gpu",
    "tokens_per_s": "tokens_per_s",
    "power_w": "power_w.gpu",
    "ttft_s": "ttft_s",
    "itl_s": "itl_s",
    "steady_j_per_token": "steady.j_per_token.gpu",
}


def _stat(values: list[float]) -> dict[str, Any]:
    s = summarize(values)
    return {"n": s.n, "mean": s.mean, "ci_half_width": s.ci_half_width, "cv": s.cv, "warning": s.warning}


def _cells(db: Path) -> tuple[dict[tuple[str, str, str], list[dict[str, Any]]], dict[int, str]]:
    frames = load_frames(db)
    engines = engine_labels(frames.runs)
    runs = {int(r["id"]): r for r in frames.runs.to_dict("records")}
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in frames.trials.to_dict("records"):
        if t["status"] != "ok":
            continue
        run = runs[int(t["run_id"])]
        t["details"] = json.loads(t["details_json"] or "{}")
        config = json.loads(run["config_json"] or "{}")
        engine = repeat_engine_label(engines[int(run["id"])], config, t["details"])
        cells[(engine, model_label(run), str(run["workload"]))].append(t)
    return cells, engines


def generation(cells: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for (engine, model, workload), trials in sorted(cells.items()):
        gen = [t["details"].get("metrics", {}) for t in trials if t["kind"] == "generation"]
        if not gen:
            continue
        row: dict[str, Any] = {"engine": engine, "model": model, "workload": workload}
        for name, key in GENERATION_METRICS.items():
            values = [m[key] for m in gen if m.get(key) is not None]
            if values:
                row[name] = _stat(values)
        out.append(row)
    return out


def pooled_runs(cells: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Cells whose repeats come from several runs (a cell run again, on another GPU): each run's own figures,
    which the pooled ones in ``generation`` mix."""
    out = []
    for key, trials in sorted(cells.items()):
        runs = sorted({int(t["run_id"]) for t in trials if t["kind"] == "generation"})
        if len(runs) < 2:
            continue
        for run_id in runs:
            (row,) = generation({key: [t for t in trials if int(t["run_id"]) == run_id]})
            out.append({**row, "run_id": run_id})
    return out


def setup(db: Path) -> list[dict[str, Any]]:
    """The report's own setup figures (GPU energy and latency per stage; setups with cold and warm caches
    apart), and each setup trial's length."""
    metrics = trial_metrics(load_frames(db))
    summary = summarize_metrics(metrics)
    rows = summary[(summary["kind"] == "setup") & summary["component"].isin(["", "gpu"])]
    rows = rows[rows["metric"].isin(["duration_s", "energy_j", "power_w"])]
    whole = metrics[
        (metrics["kind"] == "setup") & (metrics["stage"] == "setup") & (metrics["metric"] == "duration_s")
    ]
    out = []
    for (engine, model), part in rows.groupby(["engine", "model"]):
        stages: dict[str, dict[str, Any]] = defaultdict(dict)
        for r in part.to_dict("records"):
            # one trial has no spread: no CI (None, as in _stat), never NaN in the JSON
            stages[r["stage"]][r["metric"]] = {
                k: None if r[k] != r[k] else r[k] for k in ("n", "mean", "ci_half_width", "cv", "warning")
            }
        trials = whole[(whole["engine"] == engine) & (whole["model"] == model)]
        out.append(
            {
                "engine": engine,
                "model": model,
                "stages": dict(sorted(stages.items())),
                "per_trial_setup_s": [round(float(v), 2) for v in trials["value"]],
            }
        )
    return out


def monitor_overhead(
    generation_rows: list[dict[str, Any]], cells: dict[tuple[str, str, str], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    by_cell = {(r["engine"], r["model"], r["workload"]): r for r in generation_rows}
    out = []
    for (engine, model, workload), row in sorted(by_cell.items()):
        if not engine.endswith(":unmonitored"):
            continue
        base = engine.removesuffix(":unmonitored")
        # the paused repeats of a run (``--unmonitored-repeats``) sit beside its measured ones
        # (``transformers:overhead`` / ``transformers:overhead:unmonitored``); a twin run without a
        # monitor (``vllm:unmonitored``) beside its engine's plain entry (``vllm``, ``transformers:eager``)
        monitored = by_cell.get((base, model, workload)) or by_cell.get((f"{base}:eager", model, workload))
        if monitored is None:
            continue
        off, on = row["tokens_per_s"]["mean"], monitored["tokens_per_s"]["mean"]
        result = {
            "engine": monitored["engine"],
            "model": model,
            "workload": workload,
            "tokens_per_s_monitored": monitored["tokens_per_s"],
            "tokens_per_s_unmonitored": row["tokens_per_s"],
            "throughput_cost": (off - on) / off,
        }
        paired = _paired_costs(
            cells[(monitored["engine"], model, workload)], cells[(engine, model, workload)]
        )
        if paired:
            result["paired_throughput_cost"] = _stat(paired)
        out.append(result)
    return out


def _paired_costs(measured: list[dict[str, Any]], paused: list[dict[str, Any]]) -> list[float]:
    """Per paused repeat, its throughput cost against the measured repeat just before it in the same run
    (repeats alternate, so each pair shares the engine's state and the neighbours' load); empty for twin
    runs, whose repeats are not interleaved."""
    before = {(t["run_id"], t["repeat_index"]): t for t in measured if t["kind"] == "generation"}
    out = []
    for t in paused:
        m = before.get((t["run_id"], t["repeat_index"] - 1))
        if t["kind"] != "generation" or m is None:
            continue
        off, on = t["details"]["metrics"]["tokens_per_s"], m["details"]["metrics"]["tokens_per_s"]
        out.append((off - on) / off)
    return out


def counter_vs_timeline(db: Path) -> dict[str, Any]:
    """The product's own check (joulebench.results.crosscheck, also a table of `joulebench report`)."""
    checks = crosscheck.counter_vs_timeline(load_frames(db, parse_run_filter(None)), db)
    per_window = [
        {
            "trial_id": c.trial_id,
            "stage": c.stage,
            "device": c.device,
            "duration_s": c.duration_s,
            "counter_j": c.counter_j,
            "timeline_j": c.timeline_j,
            "rel_diff": c.rel_diff,
        }
        for c in checks
    ]
    s = crosscheck.summary(checks)
    return {
        "windows": s["windows"],
        "median_abs_rel_diff": s["median_abs_rel_diff"],
        "max_abs_rel_diff": s["max_abs_rel_diff"],
        "max_abs_rel_diff_windows_ge_2s": s["max_abs_rel_diff_windows_ge_2s"],
        "per_window": per_window,
    }


def first_repeat(folder: Path) -> list[dict[str, Any]]:
    out = []
    for raw in sorted(folder.glob("*.db.gz")):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "raw.db"
            with gzip.open(raw) as src, db.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            cells, _ = _cells(db)
        for (engine, model, workload), trials in sorted(cells.items()):
            gen = sorted((t for t in trials if t["kind"] == "generation"), key=lambda t: t["repeat_index"])
            if len(gen) < 2:
                continue
            later = [t["duration_s"] for t in gen[1:]]
            out.append(
                {
                    "file": raw.name,
                    "engine": engine,
                    "model": model,
                    "workload": workload,
                    "warmup_output_tokens": gen[0]["details"].get("warmup_output_tokens"),
                    "durations_s": [round(t["duration_s"], 2) for t in gen],
                    "first_over_later": gen[0]["duration_s"] / (sum(later) / len(later)),
                }
            )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--superseded", type=Path, help="folder of gzipped databases of superseded runs")
    args = parser.parse_args(argv)
    db = args.folder / "study.db"
    if not db.is_file():
        print(f"analyze.py: {db} is missing; make it first (benchmarks/gpu_study/README.md)", file=sys.stderr)
        return 2
    cells, _ = _cells(db)
    gen = generation(cells)
    result: dict[str, Any] = {
        "generation": gen,
        "setup": setup(db),
        "monitor_overhead": monitor_overhead(gen, cells),
        "pooled_runs": pooled_runs(cells),
        "counter_vs_timeline": counter_vs_timeline(db),
    }
    if args.superseded:
        result["first_repeat"] = first_repeat(args.superseded)
    out = args.folder / "analysis.json"
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"analysis: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

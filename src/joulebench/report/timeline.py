"""The power timeline of one run: every trial's trace, with the lifecycle stages shaded.

A trace line carries ``power_w`` (a power source), ``energy_j`` (a cumulative counter) or both; power
is taken as given, else from differences of consecutive counter readings of the same device.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.report.figures import new_figure
from joulebench.results.tidy import SETUP_PARTS, model_label
from joulebench.store.frames import load_trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from joulebench.store.frames import Frames

# Every stage that does not overlap another of its trial; prefill, decode and steady lie inside generate.
SHADES = {
    "spawn": "#9ecae1",
    "import": "#c6dbef",
    "engine_init": "#fdd0a2",
    "model_load": "#c7e9c0",
    "first_token": "#dadaeb",
    "setup": "#fee391",
    "warmup": "#fde0dd",
    "generate": "#fcbba1",
    "idle": "#e0e0e0",
    "park": "#80cdc1",
    "sleep_enter": "#e78ac3",
    "sleep": "#c2a5cf",
    "wake": "#ffd92f",
}

Series = dict[str, tuple[list[float], list[float]]]


def power_series(records: list[dict[str, object]]) -> Series:
    """Per ``component device (source)``: times and powers, from power_w or counter differences."""
    series: Series = defaultdict(lambda: ([], []))
    last: dict[str, tuple[float, float]] = {}
    for r in records:
        key = f"{r.get('component')} {r.get('device')} ({r.get('source')})"
        t, power, energy = float(r["t_s"]), r.get("power_w"), r.get("energy_j")  # type: ignore[arg-type]
        if isinstance(power, (int, float)):
            series[key][0].append(t)
            series[key][1].append(float(power))
        elif isinstance(energy, (int, float)):
            prev = last.get(key)
            # A counter that went backwards was reset (a new process): restart from this reading.
            if prev is not None and t > prev[0] and float(energy) >= prev[1]:
                series[key][0].append((t + prev[0]) / 2)
                series[key][1].append((float(energy) - prev[1]) / (t - prev[0]))
            last[key] = (t, float(energy))
    return {k: v for k, v in series.items() if v[0]}


def join_trials(per_trial: list[Series]) -> Series:
    """One series per device across trials, with a NaN between trials so that no line bridges the gap."""
    joined: Series = defaultdict(lambda: ([], []))
    for series in per_trial:
        for key, (ts, ps) in series.items():
            if joined[key][0]:
                joined[key][0].append(ts[0])
                joined[key][1].append(float("nan"))
            joined[key][0].extend(ts)
            joined[key][1].extend(ps)
    return dict(joined)


def pick_run(frames: Frames, db_path: Path, requested: int | None = None) -> int | None:
    """The requested run, else the first selected run whose trials have a trace."""
    from contextlib import closing

    from joulebench.store.frames import connect_readonly

    ids = [int(i) for i in frames.runs["id"]]
    if requested is not None:
        return requested if requested in ids else None
    with closing(connect_readonly(db_path)) as conn:
        for run_id in ids:
            trial_ids = [int(t) for t in frames.trials[frames.trials["run_id"] == run_id]["id"]]
            marks = ",".join("?" * len(trial_ids))
            query = f"SELECT 1 FROM traces WHERE trial_id IN ({marks}) LIMIT 1"
            if trial_ids and conn.execute(query, trial_ids).fetchone():
                return run_id
    return None


def timeline(frames: Frames, db_path: Path, run_id: int) -> Figure | None:
    """Power of every traced device over the run, stage windows shaded; None when the run has no trace."""
    trials = frames.trials[frames.trials["run_id"] == run_id]
    series = join_trials([power_series(load_trace(db_path, int(tid))) for tid in trials["id"]])
    if not series:
        return None
    windows = frames.stage_energy[frames.stage_energy["trial_id"].isin(trials["id"])]
    spans = windows[["trial_id", "stage", "start_s", "end_s"]].drop_duplicates()
    t0 = min([min(ts) for ts, _ in series.values()] + list(spans["start_s"]))
    fig = new_figure(9.0, 3.8)
    ax = fig.add_subplot()
    shaded: set[str] = set()
    for _, group in spans.groupby("trial_id"):
        stages = set(group["stage"])
        for row in group.itertuples(index=False):
            if row.stage not in SHADES or (row.stage == "setup" and stages & set(SETUP_PARTS)):
                continue
            label = None if row.stage in shaded else row.stage
            ax.axvspan(
                row.start_s - t0, row.end_s - t0, color=SHADES[row.stage], alpha=0.6, label=label, lw=0
            )
            shaded.add(row.stage)
    for name, (ts, ps) in sorted(series.items()):
        ax.plot([t - t0 for t in ts], ps, linewidth=1, label=name)
    run = frames.runs[frames.runs["id"] == run_id].iloc[0]
    ax.set_title(f"Power over run {run_id}: {run['engine']}, {model_label(run)}, {run['workload']}")
    ax.set_xlabel("Time since the first sample (s)")
    ax.set_ylabel("Power (W)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig

"""`joulebench report` end to end: database -> tidy frames -> tables, figures, exports, one HTML page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.errors import UsageError, require
from joulebench.report import figures as figs
from joulebench.report.devices import device_table
from joulebench.report.floor import floor_table
from joulebench.report.html import Page, render
from joulebench.report.lifecycle import lifecycle_table
from joulebench.report.phases import phase_table
from joulebench.report.policy import Arrivals
from joulebench.report.pooling import pooled_gpu_warnings
from joulebench.report.ranking import ranking_table
from joulebench.report.tables import Table, generation_tables, setup_table
from joulebench.report.warmup import warmup_table
from joulebench.results.aggregate import summarize_metrics
from joulebench.results.tidy import engine_labels, model_label, trial_details, trial_metrics
from joulebench.store.frames import Frames, load_frames, parse_run_filter

if TYPE_CHECKING:
    import pandas as pd

DEFINITIONS = (
    "J/token: energy of the generate window / output tokens of the trial (token IDs from the engine).",
    "J/response: that energy / requests in the trial. J/s (W): energy / window duration.",
    "tokens/s: output tokens / generate window duration. TTFT: mean time to first token over requests. "
    "TPOT: time per output token after the first, per request. ITL: the mean gap between consecutive tokens.",
    "Setup: engine initialisation (E_IE, per engine, pooled over models) and model loading (E_LM, per "
    "engine and model), until the first token.",
    "Prefill: the spans of a repeat when some request is in prefill; decode: those when every request in "
    "flight is decoding (docs/phases.md).",
    "Above idle: less the machine's idle baseline (measured before the run) over the same time. Parked: "
    "the engine loaded and serving nothing; asleep: after its sleep call; wake: until it can serve again "
    "(docs/lifecycle.md).",
    "95 % CI: Student t across repeats (trials); 'n=1, no CI' where only one repeat exists. [±b]: the "
    "measurement's own bound (docs/counters.md).",
    "n/a (not measured): the component had no power source on that machine; it is never counted as 0. "
    "(est.): estimated (CPU by utilisation, DRAM by size), never in a measured total.",
)
EXPORT_FORMATS = ("csv", "json", "parquet")


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    figures: tuple[figs.FigureFiles, ...]
    exports: tuple[Path, ...]


def build_report(
    db_path: Path,
    out_dir: Path,
    runs: str | None = None,
    timeline_run: int | None = None,
    portable: bool = False,
    arrivals: Arrivals | None = None,
) -> ReportFiles:
    """Write report.html, the figures (PNG + SVG) and the tidy exports into ``out_dir``; ``portable``
    leaves the measuring machine's paths out (report/portable.py)."""
    require("pandas", extra="report")
    require("matplotlib", extra="report")
    run_filter = parse_run_filter(runs)
    frames = load_frames(db_path, run_filter)
    if portable:
        from joulebench.report.portable import portable as strip

        frames = strip(frames)
    if timeline_run is not None and timeline_run not in set(int(i) for i in frames.runs["id"]):
        raise UsageError(f"--timeline-run {timeline_run} is not among the selected runs")
    _make_dir(out_dir)
    metrics = trial_metrics(frames)
    summary = summarize_metrics(metrics)
    from joulebench.report.crosscheck import crosscheck_section

    crosscheck, crosscheck_warnings = crosscheck_section(frames, db_path)
    tables = [
        t
        for t in (
            setup_table(summary),
            *generation_tables(summary),
            warmup_table(summary),
            phase_table(summary),
            floor_table(summary),
            lifecycle_table(summary),
            device_table(frames),
            crosscheck,
        )
        if t is not None
    ]
    figures = _figures(frames, summary, db_path, out_dir, timeline_run)
    figures += _policy_figures(summary, out_dir, arrivals or Arrivals.from_rate(1000.0))
    exports = _export(
        out_dir,
        {
            "runs": _runs_export(frames),
            "trial_metrics": metrics,
            "summary": summary,
            "requests": _requests_export(frames),
        },
    )
    warnings = _quality_warnings(summary) + pooled_gpu_warnings(frames, metrics) + _idle_busy_warnings(frames)
    warnings += crosscheck_warnings
    page = Page(
        title="joulebench report",
        selection=_selection(run_filter, portable),
        runs=runs_table(frames),
        ranking=ranking_table(summary),
        tables=tuple(tables),
        figures=tuple(figures),
        warnings=tuple(warnings),
        definitions=DEFINITIONS,
    )
    html = out_dir / "report.html"
    _write_atomic(html, render(page))
    return ReportFiles(html, tuple(figures), tuple(exports))


def _selection(run_filter: object, portable: bool) -> str:
    from joulebench.report.portable import strip_paths

    text = str(run_filter) or "all runs"
    return strip_paths(text) if portable else text


def _make_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a folder")
    try:
        # owner-only, like the database: a report quotes the runs' settings, paths and host names
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out_dir}: {exc.strerror}") from None


def _figures(
    frames: Frames, summary: pd.DataFrame, db_path: Path, out_dir: Path, timeline_run: int | None
) -> list[figs.FigureFiles]:
    from joulebench.report import latency, timing
    from joulebench.report.timeline import pick_run, timeline

    wanted = [
        ("fig1_heatmap_j_per_token", "Fig. 1: J/token, engines x (model, workload); (est.): estimated",
         figs.heatmap(summary)),
        ("fig2_components_per_token", "Fig. 2: energy per token by component",
         figs.component_bars(summary, "j_per_token")),
        ("fig3_components_per_response", "Fig. 3: energy per response by component",
         figs.component_bars(summary, "j_per_response")),
        ("fig4_components_per_second", "Fig. 4: energy per second (power) by component",
         figs.component_bars(summary, "power_w")),
        ("fig5_efficiency_throughput", "Fig. 5: energy per token against throughput",
         figs.efficiency(summary)),
        ("fig6_throughput", "Throughput per engine, model and workload", timing.throughput(summary)),
        ("fig7_latency", "Latency: TTFT, TPOT, ITL", timing.latency(summary)),
        ("fig8_setup_time", "Setup time by stage", timing.setup_time(summary)),
        ("fig9_energy_latency", "Energy against latency (TPOT), with the frontier",
         latency.frontier_figure(summary)),
    ]  # fmt: skip
    run_id = pick_run(frames, db_path, timeline_run)
    if run_id is not None:
        fig = timeline(frames, db_path, run_id)
        wanted.append(("timeline_run", f"Power timeline of run {run_id}, stages shaded", fig))
    return [figs.save_figure(fig, out_dir, name, title) for name, title, fig in wanted if fig is not None]


def _policy_figures(summary: pd.DataFrame, out_dir: Path, arrivals: Arrivals) -> list[figs.FigureFiles]:
    """Energy against the idle timeout per policy, for each parked engine (report/policy.py)."""
    from joulebench.report.policy import advise_policy, policy_figure

    parked = summary[(summary["kind"] == "park") & (summary["metric"] == "above_idle_power_w")]
    out = []
    for k, (engine, model, workload) in enumerate(
        sorted(set(parked[["engine", "model", "workload"]].itertuples(index=False))), 1
    ):
        advice = advise_policy(summary, arrivals, str(engine), str(model), str(workload))
        title = (f"Fig. 10.{k}: {engine} · {model}: energy above idle per day against the idle timeout, per "
                 f"policy, for {arrivals.description} (`report --policy-requests-per-day`)")  # fmt: skip
        out.append(figs.save_figure(policy_figure(advice), out_dir, f"fig10_policy_{k}", title))
    return out


def _runs_export(frames: Frames) -> pd.DataFrame:
    return frames.runs.drop(columns=["config_json", "environment_json"], errors="ignore")


def _requests_export(frames: Frames) -> pd.DataFrame:
    """Every request of the selected generation repeats, with its run and repeat: its tokens, times and
    energy share (``energy_j``, ``energy_estimated``)."""
    trials = frames.trials[["id", "run_id", "kind", "repeat_index"]].rename(columns={"id": "trial_id"})
    joined = frames.requests.merge(trials, on="trial_id", how="inner")
    joined = joined[joined["kind"] == "generation"].drop(columns=["id", "kind"])
    first = ["run_id", "trial_id", "repeat_index", "request_index"]
    return joined[first + [c for c in joined.columns if c not in first]].reset_index(drop=True)


def _export(out_dir: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    paths = []
    for name, df in tables.items():
        for fmt in EXPORT_FORMATS:
            path = out_dir / f"{name}.{fmt}"
            tmp = path.with_suffix(f".{fmt}.tmp")
            if fmt == "csv":
                df.to_csv(tmp, index=False)
            elif fmt == "json":
                df.to_json(tmp, orient="records", indent=1)
            else:
                require("pyarrow", extra="report")
                df.to_parquet(tmp, index=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            paths.append(path)
    return paths


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


TRIAL_KINDS = ("setup", "generation", "warmup", "idle", "park", "sleep")


def runs_table(frames: Frames) -> Table:
    """The selected runs, with how many trials of each kind finished and failed."""
    rows = []
    engines = engine_labels(frames.runs)
    for r in frames.runs.to_dict("records"):
        trials = frames.trials[frames.trials["run_id"] == r["id"]]
        counts = []
        kinds = set(trials["kind"])
        # every kind the run has, so that none is hidden: the usual ones first, in a fixed order
        for kind in [*TRIAL_KINDS, *sorted(kinds - set(TRIAL_KINDS))]:
            of_kind = trials[trials["kind"] == kind]
            ok = int((of_kind["status"] == "ok").sum())
            failed = len(of_kind) - ok
            if len(of_kind):
                counts.append(f"{kind} {ok} ok" + (f", {failed} not ok" if failed else ""))
        label = r["model_label"] if isinstance(r.get("model_label"), str) and r["model_label"] else r["model"]
        rows.append(
            (str(r["id"]), engines[int(r["id"])], str(label), str(r["workload"]), str(r["batch_size"]),
             str(r["output_tokens"]), str(r["device"]), str(r["status"]), "; ".join(counts) or "no trials")
        )  # fmt: skip
    cols = ("Run", "Engine", "Model", "Workload", "Batch", "Output tokens", "Device", "Status", "Trials")
    return Table("Runs", cols, tuple(rows))


def _idle_busy_warnings(frames: Frames) -> list[str]:
    """Runs whose idle baseline caught other work on a device (recorded by the runner as ``idle_busy``)."""
    engines = engine_labels(frames.runs)
    runs = {int(r["id"]): r for r in frames.runs.to_dict("records")}
    out = []
    for trial in frames.trials.to_dict("records"):
        busy = trial_details(trial).get("idle_busy") if trial["kind"] == "idle" else None
        if busy:
            run = runs[int(trial["run_id"])]
            what = f"{engines[int(run['id'])]}, {model_label(run)}, {run['workload']}"
            out.append(f"run {run['id']} ({what}): {busy}")
    return out


def _quality_warnings(summary: pd.DataFrame) -> list[str]:
    """Unstable or under-repeated headline figures (measured totals, throughput, latency)."""
    headline = {"generation": ("j_per_token", "tokens_per_s"), "setup": ("energy_j", "duration_s")}
    # a warm-up is one batch per engine start by design: its count says nothing about the cell's repeats
    key = summary["component"].isin(["total", ""]) & summary["warning"].notna()
    key &= summary["stage"] != "warmup"
    key &= summary.apply(lambda r: r["metric"] in headline.get(r["kind"], ()), axis=1).astype(bool)
    out = []
    for r in summary[key].to_dict("records"):
        where = ", ".join(str(v) for v in (r["engine"], r["model"], r["workload"], r["stage"]) if v)
        out.append(f"{where}: {r['metric']} {r['warning']}")
    return out

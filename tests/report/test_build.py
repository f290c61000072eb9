from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from joulebench.report.build import ReportFiles, build_report
from joulebench.report.figures import iso_power_levels
from joulebench.report.timeline import join_trials, power_series

FIGURES = {
    "fig1_heatmap_j_per_token",
    "fig2_components_per_token",
    "fig3_components_per_response",
    "fig4_components_per_second",
    "fig5_efficiency_throughput",
    "fig6_throughput",
    "fig7_latency",
    "fig8_setup_time",
    "fig9_energy_latency",
    "timeline_run",
}
TIMING = {"fig6_throughput", "fig7_latency", "fig8_setup_time"}


@pytest.fixture(scope="module")
def report(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return build_report(sample_db, tmp_path_factory.mktemp("report"))


def test_every_figure_is_written_as_png_and_svg(report: ReportFiles) -> None:
    assert {f.name for f in report.figures} == FIGURES
    for f in report.figures:
        assert f.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in f.svg.read_text()[:2000]


def test_html_is_self_contained_and_embeds_every_figure(report: ReportFiles) -> None:
    html = report.html.read_text()
    assert len(re.findall(r'<img class="report-figure"[^>]*src="data:image/png;base64,', html)) == len(
        FIGURES
    )
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "<script" not in html
    assert "3.85 ± 0.62" in html  # transformers J/token with its CI


def test_exports_hold_the_tidy_tables(report: ReportFiles) -> None:
    import pandas as pd

    out = report.html.parent
    assert {p.name for p in report.exports} == {
        f"{name}.{fmt}"
        for name in ("runs", "trial_metrics", "summary", "requests")
        for fmt in ("csv", "json", "parquet")
    }
    summary = pd.read_parquet(out / "summary.parquet")
    row = summary[
        (summary["engine"] == "vllm")
        & (summary["component"] == "total")
        & (summary["metric"] == "j_per_token")
    ]
    assert float(row["mean"].iloc[0]) == pytest.approx(0.975)
    from_csv = pd.read_csv(out / "trial_metrics.csv")
    assert len(from_csv) == len(pd.read_parquet(out / "trial_metrics.parquet"))
    records = json.loads((out / "summary.json").read_text())
    assert {"engine", "metric", "mean", "ci_low", "ci_high", "n", "estimated"} <= set(records[0])
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["engine"]) == ["transformers", "vllm"]
    requests = pd.read_csv(out / "requests.csv")
    assert list(requests.columns[:4]) == ["run_id", "trial_id", "repeat_index", "request_index"]
    assert {"ttft_s", "tpot_s", "energy_j", "energy_estimated", "submit_s"} <= set(requests.columns)
    # every request of every generation repeat of the sample (4 each), and nothing else
    trials = pd.read_parquet(out / "trial_metrics.parquet")
    generation = trials[trials["kind"] == "generation"]["trial_id"].unique()
    assert sorted(requests["trial_id"].unique()) == sorted(int(t) for t in generation)
    assert (requests.groupby("trial_id").size() == 4).all()


def test_power_from_power_values_and_counter_differences() -> None:
    records = [
        {"t_s": 0.0, "source": "nvml", "component": "gpu", "device": "gpu0", "power_w": 100.0},
        {"t_s": 0.0, "source": "rapl", "component": "cpu", "device": "package-0", "energy_j": 10.0},
        {"t_s": 0.5, "source": "rapl", "component": "cpu", "device": "package-0", "energy_j": 40.0},
        {"t_s": 1.0, "source": "rapl", "component": "cpu", "device": "package-0", "energy_j": 5.0},  # reset
        {"t_s": 2.0, "source": "rapl", "component": "cpu", "device": "package-0", "energy_j": 25.0},
    ]
    series = power_series(records)
    assert series["gpu gpu0 (nvml)"] == ([0.0], [100.0])
    assert series["cpu package-0 (rapl)"] == ([0.25, 1.5], [60.0, 20.0])
    joined = join_trials([series, series])
    ts, ps = joined["gpu gpu0 (nvml)"]
    assert ts == [0.0, 0.0, 0.0] and ps[0] == 100.0 and ps[1] != ps[1] and ps[2] == 100.0  # NaN between


def test_iso_power_levels_span_the_measured_powers() -> None:
    assert iso_power_levels([154.0, 195.0]) == [100, 200]
    levels = iso_power_levels([3.0, 3000.0])
    assert len(levels) <= 4 and min(levels) <= 10 and max(levels) >= 1000


def test_estimated_only_results_still_draw_labelled_figures(tmp_path: Path) -> None:
    from tests.report.resultsdb import ResultsWriter

    w = ResultsWriter(tmp_path / "est.db")
    run = w.run("transformers", "m", workload="w")
    for i in range(2):
        trial = w.trial(run, "generation", i, output_tokens=10, n_requests=1)
        w.window(trial, "generate", 1.0, {"cpu": 50.0 + i, "dram": 5.0}, estimated=("cpu", "dram"))
    w.close()
    files = build_report(tmp_path / "est.db", tmp_path / "out")
    # no setup trial and no per-request latencies in these rows: of the time figures, throughput alone
    # nothing measured: no energy-latency frontier either (only measured totals choose)
    assert {f.name for f in files.figures} == FIGURES - {
        "timeline_run",
        "fig7_latency",
        "fig8_setup_time",
        "fig9_energy_latency",
    }
    html = files.html.read_text()
    assert "n/a (not measured)" in html and "(est.)" in html
    # the axes say so too, where the plotted figure is an estimate (the SVG keeps each text as a comment)
    svg = (tmp_path / "out" / "fig5_efficiency_throughput.svg").read_text()
    assert "Energy per token (J/token, measured total; (est.): estimated)" in svg


def test_timing_only_results_still_have_figures(tmp_path: Path) -> None:
    """A machine where energy was neither measured nor estimated (--no-estimate, no sensor): the report
    drew no figure at all; now the time figures, from the same database."""
    from tests.report.resultsdb import ResultsWriter

    w = ResultsWriter(tmp_path / "t.db")
    run = w.run("transformers", "m", workload="w")
    setup = w.trial(run, "setup")
    for stage, seconds in (("import", 2.0), ("model_load", 1.0), ("first_token", 0.2), ("setup", 3.2)):
        w.window(setup, stage, seconds, {"cpu": None})
    for i in range(2):
        details = {"metrics": {"ttft_s": 0.1 + i / 100, "tpot_s": 0.02, "itl_s": 0.021}}
        trial = w.trial(run, "generation", i, output_tokens=10, n_requests=1, details=details)
        w.window(trial, "generate", 1.0 + i / 10, {"cpu": None})
    w.close()
    files = build_report(tmp_path / "t.db", tmp_path / "out")
    assert {f.name for f in files.figures} >= {"fig6_throughput", "fig8_setup_time"}
    assert not {f.name for f in files.figures} & (FIGURES - TIMING)  # no energy figure drawn from nothing


def test_report_of_one_engine_without_traces(tmp_path: Path) -> None:
    from tests.report.resultsdb import build_sample_db

    db = build_sample_db(tmp_path / "nt.db", traces=False)
    files = build_report(db, tmp_path / "out", runs="engine=vllm")
    # one cell: no frontier to draw between cells
    assert {f.name for f in files.figures} == FIGURES - {"timeline_run", "fig9_energy_latency"}
    html = files.html.read_text()
    assert "Runs: engine=vllm" in html and "transformers" not in html


def test_figures_leave_out_engines_that_measured_no_energy(tmp_path: Path) -> None:
    from joulebench.report.figures import _cells
    from joulebench.results.aggregate import summarize_metrics
    from joulebench.results.tidy import trial_metrics
    from joulebench.store.frames import load_frames
    from tests.report.resultsdb import ResultsWriter

    w = ResultsWriter(tmp_path / "twin.db")
    measured, twin = w.run("vllm", "m"), w.run("vllm", "m", config={"monitor": False})
    w.window(w.trial(measured, "generation", output_tokens=10, n_requests=1), "generate", 1.0, {"gpu": 5.0})
    w.window(w.trial(twin, "generation", output_tokens=10, n_requests=1), "generate", 0.9, {"none": None})
    w.close()
    summary = summarize_metrics(trial_metrics(load_frames(tmp_path / "twin.db")))
    assert set(summary["engine"]) == {"vllm", "vllm:unmonitored"}  # both in the tables
    engines, _ = _cells(summary)
    assert engines == ["vllm"]  # only the one with energy in the figures


def test_the_same_data_gives_the_same_svg_files(report: ReportFiles, sample_db: Path, tmp_path: Path) -> None:
    again = build_report(sample_db, tmp_path / "again")
    for name in FIGURES:
        first = (report.html.parent / f"{name}.svg").read_bytes()
        assert first == (again.html.parent / f"{name}.svg").read_bytes(), name
    ids = [re.findall(rb'id="(p[0-9a-f]+)"', (report.html.parent / f"{n}.svg").read_bytes()) for n in FIGURES]
    flat = [i for per_figure in ids for i in set(per_figure)]
    assert flat and len(flat) == len(set(flat))  # no id shared between figures embedded in one page


def test_prefill_and_decode_have_a_table_of_their_own(tmp_path: Path) -> None:
    """Windows in pieces, as the runner stores a phase: each phase's energy is the sum of its pieces."""
    from tests.report.resultsdb import ResultsWriter

    w = ResultsWriter(tmp_path / "p.db")
    run = w.run("vllm", "m", workload="w", batch_size=2, output_tokens=5)
    for i in range(2):
        trial = w.trial(run, "generation", i, output_tokens=10, n_requests=2)
        w.window(trial, "generate", 4.0, {"gpu": 400.0}, start_s=100.0 * (i + 1))
        # prefill in two pieces (1 s, 0.5 s) and decode in one: 100 + 50 J, then 240 J
        w.window(trial, "prefill", 1.0, {"gpu": 100.0}, start_s=100.0 * (i + 1))
        w.window(trial, "prefill", 0.5, {"gpu": 50.0}, start_s=100.0 * (i + 1) + 2.0)
        w.window(trial, "decode", 2.4, {"gpu": 240.0}, start_s=100.0 * (i + 1) + 1.0)
        for r in range(2):
            w.conn.execute(
                "INSERT INTO requests (trial_id, request_index, prompt_tokens, output_tokens)"
                " VALUES (?, ?, 30, 5)",
                (trial, r),
            )
    w.close()
    files = build_report(tmp_path / "p.db", tmp_path / "out")
    html = files.html.read_text()
    assert "Prefill and decode" in html
    # 150 J over 60 prompt tokens; 240 J over 10 - 2 output tokens; prefill 150 of 390 J
    assert "2.5 ± 0" in html and "30 ± 0" in html and "38.5%" in html


def test_the_runs_table_counts_every_kind_of_trial(tmp_path: Path) -> None:
    """Park and sleep trials (and a kind of a later release) are counted with the others, not hidden."""
    from joulebench.report.build import runs_table
    from joulebench.store.frames import load_frames
    from tests.report.resultsdb import ResultsWriter

    w = ResultsWriter(tmp_path / "r.db")
    run = w.run("vllm", "m", model_label="llama-3.2-1b")
    for kind, status in [("idle", "ok"), ("setup", "ok"), ("generation", "ok"), ("park", "ok"),
                         ("sleep", "ok"), ("sleep", "failed"), ("later-kind", "ok")]:  # fmt: skip
        w.trial(run, kind, status=status)
    w.close()
    (row,) = runs_table(load_frames(tmp_path / "r.db")).rows
    counts = "setup 1 ok; generation 1 ok; idle 1 ok; park 1 ok; sleep 1 ok, 1 not ok; later-kind 1 ok"
    assert row[-1] == counts

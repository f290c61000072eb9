"""The idle baseline in the report: a run that measured nothing it was taken for stays out of the idle
statistics, and a baseline during which another process kept a GPU busy is named under Result quality."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest

from joulebench.report.build import build_report
from joulebench.results.aggregate import StatIndex, summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter

BUSY = "the idle baseline ran while another process kept the device busy (gpu0 up to 89 % utilisation)"


def _db(tmp_path: Path) -> Path:
    """Three runs of one cell. Run 1 measured (idle 70 W); run 2's engine never started, with a neighbour's
    batch on the GPU (idle 420 W); run 3 measured after a busy baseline (idle 100 W)."""
    w = ResultsWriter(tmp_path / "r.db")
    for idle_w, ok, busy in ((70.0, True, False), (420.0, False, True), (100.0, True, True)):
        run = w.run(
            "vllm", "m", batch_size=4, output_tokens=100, model_label="llama", status="ok" if ok else "failed"
        )
        details: dict[str, object] = {"idle_utilization_pct": {"gpu0": 89.0 if busy else 0.0}}
        details |= {"idle_busy": BUSY} if busy else {}
        idle = w.trial(run, "idle", details=details)
        w.window(idle, "idle", 5.0, {"gpu": idle_w * 5.0})
        gen = w.trial(run, "generation", status="ok" if ok else "failed", output_tokens=400, n_requests=4)
        if ok:
            w.window(gen, "generate", 2.0, {"gpu": 400.0})
    w.close()
    return tmp_path / "r.db"


def test_the_idle_baseline_of_a_run_that_measured_nothing_is_left_out(tmp_path: Path) -> None:
    summary = summarize_metrics(trial_metrics(load_frames(_db(tmp_path))))
    stat = StatIndex(summary).get("idle", "vllm", "llama", "", "idle", "gpu", "power_w")
    assert stat is not None and stat.n == 2
    assert stat.mean == pytest.approx((70.0 + 100.0) / 2)  # not run 2's 420 W


def test_a_busy_idle_baseline_is_named_under_result_quality(tmp_path: Path) -> None:
    files = build_report(_db(tmp_path), tmp_path / "out")
    html = files.html.read_text()
    quality = html[html.index("<h2>Result quality</h2>") :]
    for run_id in (2, 3):
        assert escape(f"run {run_id} (vllm, llama, standard): {BUSY}") in quality
    assert "run 1 (" not in quality

"""The report sets the GPU energy counter against the power timeline of the same window, with numbers
computed here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulebench.report.build import build_report
from joulebench.results.crosscheck import counter_vs_timeline, summary
from joulebench.store.frames import load_frames, parse_run_filter
from tests.report.resultsdb import ResultsWriter


def _gpu_window(w: ResultsWriter, trial: int, start: float, end: float, counter_j: float) -> None:
    w.conn.execute(
        "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j, method,"
        " estimated) VALUES (?, 'generate', 'gpu', 'gpu0', ?, ?, ?, 'counter', 0)",
        (trial, start, end, counter_j),
    )


def _database(path: Path, counters_j: list[float]) -> Path:
    """Windows of 10 s at a timeline of exactly 300 W (3,000 J), each counter as given; a 1 s window too."""
    w = ResultsWriter(path)
    run = w.run("vllm", "m")
    for i, counter in enumerate([*counters_j, 101.0]):
        start = 100.0 + 20 * i
        end = start + (10.0 if i < len(counters_j) else 1.0)
        trial = w.trial(run, "generation", i, output_tokens=100, n_requests=1)
        _gpu_window(w, trial, start, end, counter)
        readings = [{"t_s": start - 0.5 + k * 0.02, "source": "nvml", "component": "gpu", "device": "gpu0",
                     "power_w": 300.0} for k in range(int((end - start + 1.0) / 0.02) + 1)]  # fmt: skip
        readings.append(
            {"t_s": start, "source": "nvml", "component": "gpu", "device": "gpu1", "power_w": 9e9}
        )
        w.trace(trial, readings)
    w.close()
    return path


def test_each_window_against_its_own_gpus_timeline(tmp_path: Path) -> None:
    db = _database(tmp_path / "r.db", [3000.0, 3030.0, 2850.0])
    checks = counter_vs_timeline(load_frames(db, parse_run_filter(None)), db)
    assert [round(c.timeline_j, 6) for c in checks] == [3000.0, 3000.0, 3000.0, 300.0]  # gpu1 not mixed in
    assert [round(c.rel_diff, 6) for c in checks] == [0.0, round(-30 / 3030, 6), round(150 / 2850, 6),
                                                      round(199 / 101, 6)]  # fmt: skip
    s = summary(checks)
    assert s["windows"] == 4 and s["windows_ge_2s"] == 3
    assert s["max_abs_rel_diff_windows_ge_2s"] == pytest.approx(150 / 2850)
    assert s["max_abs_rel_diff"] == pytest.approx(199 / 101)  # the 1 s window: out of the headline


def test_the_report_shows_the_check_and_warns_past_five_percent(tmp_path: Path) -> None:
    good = build_report(_database(tmp_path / "good.db", [3000.0, 3030.0]), tmp_path / "good")
    html = good.html.read_text()
    assert "GPU energy counter against the power timeline" in html and "0.99%" in html
    assert "differ by" not in html
    bad = build_report(_database(tmp_path / "bad.db", [3000.0, 2850.0]), tmp_path / "bad")
    html = bad.html.read_text()
    assert "the GPU energy counter and the power timeline differ by 5.3% on a window of 2 s or more" in html


def test_no_trace_no_table(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "n.db")
    run = w.run("vllm", "m")
    trial = w.trial(run, "generation", 0, output_tokens=10, n_requests=1)
    _gpu_window(w, trial, 1.0, 5.0, 100.0)
    w.close()
    html = build_report(tmp_path / "n.db", tmp_path / "out").html.read_text()
    assert "GPU energy counter against the power timeline" not in html
    assert json.loads((tmp_path / "out" / "summary.json").read_text())

"""A cell whose repeats came from runs on different GPUs is named among the report's warnings."""

from __future__ import annotations

import json
from pathlib import Path

from joulebench.report.pooling import pooled_gpu_warnings
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter


def _run_on(w: ResultsWriter, uuid: str, workload: str = "standard") -> int:
    run = w.run("transformers", "m", workload=workload, model_label="llama-3.1-8b")
    devices = [{"device": "gpu0", "component": "gpu", "source": "nvml", "attributes": {"uuid": uuid}}]
    w.conn.execute(
        "UPDATE runs SET environment_json = ? WHERE id = ?", (json.dumps({"devices_start": devices}), run)
    )
    return run


def _repeats(w: ResultsWriter, run: int, energies_j: list[float]) -> None:
    for k, energy in enumerate(energies_j):
        t = w.trial(run, "generation", repeat_index=k, output_tokens=400, n_requests=4)
        w.window(t, "generate", 2.0, {"gpu": energy})


def _warnings(w: ResultsWriter) -> list[str]:
    w.close()
    frames = load_frames(w.path)
    return pooled_gpu_warnings(frames, trial_metrics(frames))


def _line(cell: str, what: str, runs: tuple[int, int]) -> str:
    return (
        f"transformers, llama-3.1-8b, {cell}: {what} pooled from runs {runs[0]}, {runs[1]} on 2 different "
        "GPU sets; the CI includes the difference between the cards"
    )


def test_runs_on_two_cards_pooled_into_one_cell_are_named(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    first, second = _run_on(w, "GPU-aaaa"), _run_on(w, "GPU-bbbb")
    _repeats(w, first, [950.0, 952.0])
    _repeats(w, second, [912.0, 914.0, 915.0])
    same = [_run_on(w, "GPU-cccc", "high-concurrency") for _ in range(2)]  # one card twice: no warning
    for run in same:
        _repeats(w, run, [900.0])
    assert _warnings(w) == [_line("standard", "repeats", (first, second))]


def test_setup_trials_continued_on_another_card_are_named(tmp_path: Path) -> None:
    # A booking cut off after four of five setup trials; --resume ran the fifth, and the repeats, elsewhere.
    w = ResultsWriter(tmp_path / "r.db")
    first, second = _run_on(w, "GPU-aaaa"), _run_on(w, "GPU-bbbb")
    for k in range(4):
        w.window(w.trial(first, "setup", k), "setup", 20.0, {"gpu": 1800.0 + k})
    w.window(w.trial(second, "setup", 0), "setup", 20.0, {"gpu": 1900.0})
    _repeats(w, second, [912.0, 914.0, 915.0])  # all on one card: no line for the repeats
    assert _warnings(w) == [_line("setup", "setup trials", (first, second))]


def test_runs_that_recorded_no_gpu_are_not_flagged(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    for _ in range(2):  # CPU runs, or runs from before devices were recorded
        _repeats(w, w.run("transformers", "m", model_label="llama-3.1-8b"), [100.0, 101.0])
    assert _warnings(w) == []

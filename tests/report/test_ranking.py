"""The report's first table names the engine with the least energy per token, and says when it is a tie."""

from __future__ import annotations

from pathlib import Path

from joulebench.report.ranking import ranking_table
from joulebench.results.aggregate import summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter


def _cell(
    w: ResultsWriter, engine: str, workload: str, energies_j: list[float], parts: tuple[str, ...]
) -> None:
    run = w.run(engine, "m", workload=workload, model_label="llama-3.2-1b")
    for k, energy in enumerate(energies_j):
        t = w.trial(run, "generation", repeat_index=k, output_tokens=400, n_requests=4)
        w.window(t, "generate", 2.0, {p: energy / len(parts) for p in parts})


def _rows(tmp_path: Path) -> dict[str, dict[str, str]]:
    frames = load_frames(tmp_path / "r.db")
    table = ranking_table(summarize_metrics(trial_metrics(frames)))
    assert table is not None
    return {row[1]: dict(zip(table.columns, row, strict=True)) for row in table.rows}


def test_the_cheapest_engine_wins_only_when_its_ci_lies_below_the_next(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    gpu = ("gpu",)
    _cell(w, "vllm", "standard", [40.0, 41.0, 42.0], gpu)  # 0.1025 J/token
    _cell(w, "transformers", "standard", [200.0, 204.0, 208.0], gpu)  # 0.51
    _cell(w, "deepspeed", "standard", [199.0, 203.0, 213.0], gpu)  # 0.5125
    _cell(w, "transformers", "high-concurrency", [100.0, 120.0, 140.0], gpu)  # 0.30, wide
    _cell(w, "deepspeed", "high-concurrency", [118.0, 121.0, 124.0], gpu)  # 0.3025
    _cell(w, "vllm", "high-throughput", [50.0, 51.0], gpu)  # one engine only: nothing to rank
    w.close()
    rows = _rows(tmp_path)
    assert set(rows) == {"standard", "high-concurrency"}
    std, hc = rows["standard"], rows["high-concurrency"]
    assert (std["Least energy"], std["Next"], std["Resolved"]) == ("vllm", "transformers", "yes")
    assert std["Next / least"] == "4.98×"  # 0.51 / 0.1025
    assert std["All, least first"] == "vllm < transformers < deepspeed"
    assert (hc["Least energy"], hc["Next"]) == ("transformers", "deepspeed")
    assert hc["Resolved"] == "tie: CIs overlap"
    assert std["Covers"] == "gpu"


def test_totals_over_different_components_are_not_compared(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    _cell(w, "vllm", "standard", [40.0, 41.0, 42.0], ("gpu",))
    _cell(w, "transformers", "standard", [200.0, 204.0, 208.0], ("gpu", "cpu", "dram"))
    w.close()
    (row,) = _rows(tmp_path).values()
    assert row["Resolved"].startswith("not comparable: covers gpu against ")

"""The warm-up batch before an engine start's first repeat is measured, shown against a warm batch, and
kept out of every statistic of the repeats."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from joulebench.report.ranking import ranking_table
from joulebench.report.warmup import warmup_table
from joulebench.results.aggregate import StatIndex, summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter

if TYPE_CHECKING:
    import pandas as pd


def _summary(tmp_path: Path, warmup_tokens: int, own_trial: bool = True, repeats: int = 3) -> pd.DataFrame:
    """Three repeats (or ``repeats``) of 400 tokens after a warm-up three times slower per token: a trial of
    its own, as joulebench stores it, or (``own_trial=False``) a window of the first repeat's trial, as runs
    stored before that hold it."""
    w = ResultsWriter(tmp_path / "r.db")
    run = w.run("transformers", "m", batch_size=4, output_tokens=100, model_label="llama")
    warm_s, warm_j = 6.0 * warmup_tokens / 400, 300.0 * warmup_tokens / 400
    details = {"warmup_output_tokens": warmup_tokens}
    if own_trial:
        t = w.trial(run, "warmup", 0, output_tokens=warmup_tokens, n_requests=4, details=details)
        w.window(t, "warmup", warm_s, {"gpu": warm_j})
    for k in range(repeats):
        inside = k == 0 and not own_trial
        t = w.trial(
            run,
            "generation",
            repeat_index=k,
            output_tokens=400,
            n_requests=4,
            details=details if inside else None,
        )
        if inside:
            w.window(t, "warmup", warm_s, {"gpu": warm_j})
        w.window(t, "generate", 2.0, {"gpu": 100.0 + k})
    w.close()
    return summarize_metrics(trial_metrics(load_frames(tmp_path / "r.db")))


@pytest.mark.parametrize("own_trial", [True, False])
def test_the_warm_up_is_compared_with_the_repeats_and_stays_out_of_them(
    tmp_path: Path, own_trial: bool
) -> None:
    summary = _summary(tmp_path, warmup_tokens=400, own_trial=own_trial)
    table = warmup_table(summary)
    assert table is not None
    (row,) = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    assert (row["Engine"], row["n"]) == ("transformers", "1")
    assert (row["Warm-up tokens"], row["Repeat tokens"]) == ("400", "400")
    assert row["Warm-up J/token"] == "0.75 (n=1, no CI)"
    assert row["Warm-up / repeat"] == "2.97×"  # 0.75 against the repeats' 0.2525
    assert row["Warm-up tokens/s"] == "66.67 (n=1, no CI)" and row["Repeat tokens/s"].startswith("200 ± 0")
    index = StatIndex(summary)
    stat = index.get("generation", "transformers", "llama", "standard", "generate", "total", "j_per_token")
    assert stat is not None and stat.n == 3 and abs(stat.mean - 0.2525) < 1e-12  # repeats only
    assert ranking_table(summary) is None  # one engine: nothing to rank


def test_a_warm_up_cut_short_shows_its_length(tmp_path: Path) -> None:
    table = warmup_table(_summary(tmp_path, warmup_tokens=64))
    assert table is not None
    (row,) = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    assert (row["Warm-up tokens"], row["Repeat tokens"]) == ("64", "400")
    assert any("cut short" in note for note in table.notes)


def test_a_run_cut_off_in_its_first_repeat_reports_its_warm_up(tmp_path: Path) -> None:
    """A booking that ended during the first repeat left the warm-up trial and nothing after it: the
    report shows the warm-up with no repeat to set it against, and builds every other part."""
    from joulebench.report.build import build_report

    w = ResultsWriter(tmp_path / "cut.db")
    run = w.run(
        "transformers", "m", batch_size=4, output_tokens=100, model_label="llama", status="interrupted"
    )
    t = w.trial(run, "warmup", 0, output_tokens=400, n_requests=4, details={"warmup_output_tokens": 400})
    w.window(t, "warmup", 6.0, {"gpu": 300.0})
    w.close()
    table = warmup_table(summarize_metrics(trial_metrics(load_frames(tmp_path / "cut.db"))))
    assert table is not None
    (row,) = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    assert (row["Warm-up J/token"], row["Repeat J/token"], row["Warm-up / repeat"]) == (
        "0.75 (n=1, no CI)",
        "-",
        "-",
    )
    files = build_report(tmp_path / "cut.db", tmp_path / "report")
    html = files.html.read_text()
    assert "warmup 1 ok" in html  # the runs table counts it


@pytest.mark.parametrize("repeats", [3, 2])
def test_result_quality_names_short_repeats_and_never_the_one_warm_up(tmp_path: Path, repeats: int) -> None:
    from joulebench.report.build import _quality_warnings

    warnings = _quality_warnings(_summary(tmp_path, warmup_tokens=400, repeats=repeats))
    assert not any("warmup" in w for w in warnings)
    short = [w for w in warnings if "2 repeats (need >= 3)" in w]
    assert len(short) == (0 if repeats == 3 else 2)  # J/token and tokens/s of the generate stage

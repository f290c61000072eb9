from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from joulebench.report.tables import NOT_MEASURED, Table, format_stat, generation_tables, setup_table
from joulebench.results.aggregate import Stat, summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter

if TYPE_CHECKING:
    import pandas as pd

T_975_DF2 = 4.302652730  # Student t, 97.5 % quantile, 2 degrees of freedom (3 repeats)


def _half(values: list[float]) -> float:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return T_975_DF2 * std / math.sqrt(len(values))


def _row(table: Table, **match: str) -> dict[str, str]:
    rows = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


@pytest.fixture(scope="module")
def summary(sample_db: Path) -> pd.DataFrame:
    return summarize_metrics(trial_metrics(load_frames(sample_db)))


def test_summary_mean_and_student_t_ci(summary: pd.DataFrame) -> None:
    row = summary[
        (summary["engine"] == "transformers")
        & (summary["stage"] == "generate")
        & (summary["component"] == "total")
        & (summary["metric"] == "j_per_token")
    ].iloc[0]
    per_token = [1440 / 400, 1540 / 400, 1640 / 400]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(3.85)
    assert row["ci_half_width"] == pytest.approx(_half(per_token))
    assert row["ci_low"] == pytest.approx(3.85 - _half(per_token))


def test_setup_table_matches_hand_computed_figures(summary: pd.DataFrame) -> None:
    table = setup_table(summary)
    assert table is not None
    tf_init = _row(table, Phase="Engine initialisation (E_IE)", Engine="transformers")
    assert tf_init["Model"] == "all models"  # E_IE per engine, as in the paper's Table 1
    # engine_init totals per repeat: 390+500+70, 400+510+70, 410+520+70 = 960, 980, 1000 J
    assert tf_init["Measured total (J)"] == f"980 ± {_half([960, 980, 1000]):.0f}"
    assert tf_init["Latency (s)"] == f"2.00 ± {_half([1.9, 2.0, 2.1]):.2f}"
    assert tf_init["GPU (J)"] == f"400 ± {_half([390, 400, 410]):.0f}"
    assert tf_init["DRAM (J)"] == "70 ± 0"
    assert tf_init["Other (J)"] == NOT_MEASURED
    vllm_load = _row(table, Phase="Model loading (E_LM)", Engine="vllm", Model="llama-3.2-1b")
    assert vllm_load["Measured total (J)"] == "1780 ± 0"  # 700 + 1000 + 80
    assert vllm_load["Covers"] == "gpu+cpu+dram"
    vllm_setup = _row(table, Phase="Setup total, until the first token", Engine="vllm")
    assert vllm_setup["Measured total (J)"] == "22600 ± 0"
    assert vllm_setup["Latency (s)"] == "48 ± 0"


def test_generation_tables_match_hand_computed_figures(summary: pd.DataFrame) -> None:
    head, breakdown = generation_tables(summary)
    assert head.title == "Token generation: standard"
    tf = _row(head, Engine="transformers")
    assert tf["J/token"] == f"3.85 ± {_half([3.6, 3.85, 4.1]):.2f}"
    assert tf["J/response"] == f"385 ± {_half([360, 385, 410]):.0f}"
    assert tf["J/s (W)"] == f"154 ± {_half([144, 154, 164]):.0f}"
    assert tf["tokens/s"] == "40 ± 0"  # 400 tokens / 10 s
    assert tf["TTFT (s)"] == "0.5 ± 0"
    assert tf["TPOT (s)"] == "0.01 ± 0"
    # (800 + 320 + 32) / 320 tokens of the steady window, and so on: 3.6, 3.85, 4.1
    assert tf["Steady J/token"] == f"3.85 ± {_half([3.6, 3.85, 4.1]):.2f}"
    assert tf["n"] == "3"  # the failed fourth trial is not a repeat
    vllm = _row(head, Engine="vllm")
    assert vllm["J/token"] == "0.975 ± 0"  # (300 + 80 + 10) / 400
    assert vllm["tokens/s"] == "200 ± 0"
    assert vllm["Steady J/token"] == "-"  # no steady window: no figure, never 0
    assert _row(breakdown, Engine="vllm", Component="GPU")["J/token"] == "0.75 ± 0"
    assert _row(breakdown, Engine="vllm", Component="Other (node - parts)")["J/s (W)"] == NOT_MEASURED


def test_estimated_components_are_labelled_and_kept_apart(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "est.db")
    run = w.run("transformers", "m", workload="w")
    for i, gpu in enumerate((100.0, 110.0, 120.0)):
        trial = w.trial(run, "generation", i, output_tokens=10, n_requests=1)
        w.window(trial, "generate", 1.0, {"gpu": gpu, "cpu": 50.0}, estimated=("cpu",))
    w.close()
    head, breakdown = generation_tables(summarize_metrics(trial_metrics(load_frames(tmp_path / "est.db"))))
    assert _row(head, Engine="transformers")["J/token"] == f"11.0 ± {_half([10, 11, 12]):.1f}"
    assert _row(breakdown, Component="CPU")["J/token"] == "5 ± 0 (est.)"
    assert (
        _row(breakdown, Component="Total incl. estimated")["J/token"]
        == f"16.0 ± {_half([15, 16, 17]):.1f} (est.)"
    )
    assert _row(breakdown, Component="DRAM")["J/token"] == NOT_MEASURED


def test_format_stat() -> None:
    assert format_stat(None) == NOT_MEASURED
    assert format_stat(Stat(22600.0, None, 1, False, "node")) == "22600 (n=1, no CI)"
    assert format_stat(Stat(0.1234567, 0.0123, 3, False, "")) == "0.123 ± 0.012"
    assert format_stat(Stat(5.0, 1e-17, 3, True, "")) == "5 ± 0 (est.)"


def test_a_stage_in_several_spans_sums_their_durations_and_energies(tmp_path: Path) -> None:
    # vLLM initialises before and after it reads the weights: engine_init comes as two spans with
    # model_load between them; the gap must not count as initialisation.
    w = ResultsWriter(tmp_path / "spans.db")
    run = w.run("vllm", "m", workload="w")
    trial = w.trial(run, "setup", 0)
    w.window(trial, "engine_init", 2.0, {"gpu": 200.0}, start_s=100.0)
    w.window(trial, "model_load", 5.0, {"gpu": 600.0}, start_s=102.0)
    w.window(trial, "engine_init", 3.0, {"gpu": 450.0}, start_s=107.0)
    w.close()
    metrics = trial_metrics(load_frames(tmp_path / "spans.db"))
    init = metrics[(metrics.stage == "engine_init") & (metrics.component.isin(["", "gpu"]))]
    values = {(r.component, r.metric): r.value for r in init.itertuples()}
    assert values[("", "duration_s")] == pytest.approx(5.0)  # 2 + 3, not 10 (100 -> 110)
    assert values[("gpu", "energy_j")] == pytest.approx(650.0)
    assert values[("gpu", "power_w")] == pytest.approx(130.0)


def test_setup_stages_are_listed_in_the_order_they_happen(tmp_path: Path) -> None:
    """The runner's process spawn comes first, as `run` prints it; a stage of one engine's own after the
    common ones, and the whole setup last, whatever order the windows were stored in."""
    w = ResultsWriter(tmp_path / "r.db")
    run = w.run("openai", "m", model_label="llama-3.2-1b")
    trial = w.trial(run, "setup", 0)
    start = w.clock_s
    for stage in ("first_token", "model_load", "server_ready", "engine_init", "import", "spawn"):
        w.window(trial, stage, 1.0, {"gpu": 100.0})
    w.window(trial, "setup", 6.0, {"gpu": 600.0}, start_s=start)
    w.close()
    table = setup_table(summarize_metrics(trial_metrics(load_frames(tmp_path / "r.db"))))
    assert table is not None
    assert [row[0] for row in table.rows] == [
        "Process spawn",
        "Import",
        "Engine initialisation (E_IE)",
        "Model loading (E_LM)",
        "First token",
        "Server ready",
        "Setup total, until the first token",
    ]


def test_a_stage_that_holds_anothers_work_is_labelled_so(tmp_path: Path) -> None:
    """TensorRT-LLM's engine_init holds its model loading (its loader's records are not read): the row
    says so and a note says what to compare instead, for every label of that engine."""
    w = ResultsWriter(tmp_path / "r.db")
    for options in ({"backend": "tensorrt"}, {}):
        run = w.run("tensorrt-llm", "m", model_label="llama-3.2-1b", config={"engine_options": options})
        for i in range(2):
            trial = w.trial(run, "setup", i)
            start = w.clock_s
            w.window(trial, "engine_init", 30.0 + i, {"gpu": 9000.0 + i})
            w.window(trial, "setup", 31.0 + i, {"gpu": 9100.0 + i}, start_s=start)
    run = w.run("vllm", "m", model_label="llama-3.2-1b")
    trial = w.trial(run, "setup", 0)
    w.window(trial, "engine_init", 20.0, {"gpu": 4000.0})
    w.close()
    table = setup_table(summarize_metrics(trial_metrics(load_frames(tmp_path / "r.db"))))
    assert table is not None
    held = "Engine initialisation (E_IE), incl. model loading"
    assert _row(table, Phase=held, Engine="tensorrt-llm:backend=tensorrt")["GPU (J)"] == "9000.5 ± 6.4"
    assert _row(table, Phase=held, Engine="tensorrt-llm")["n"] == "2"
    assert _row(table, Phase="Engine initialisation (E_IE)", Engine="vllm")["n"] == "1"
    (note,) = [n for n in table.notes if " holds " in n]
    assert note.startswith("tensorrt-llm, tensorrt-llm:backend=tensorrt: Engine initialisation (E_IE) holds")

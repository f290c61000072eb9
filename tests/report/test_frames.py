from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from joulebench.errors import StoreError, UsageError
from joulebench.report.build import runs_table
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import RunFilter, load_frames, load_trace, parse_run_filter
from joulebench.store.schema import SCHEMA_VERSION
from tests.report.resultsdb import ResultsWriter

if TYPE_CHECKING:
    import pandas as pd


def test_filter_parses_pairs_alternatives_and_ranges() -> None:
    f = parse_run_filter("engine=vllm|transformers, id=2..5")
    assert f.terms == (("engine", ("vllm", "transformers")), ("id", ("2..5",)))
    assert f.matches({"engine": "vllm", "id": 3})
    assert not f.matches({"engine": "vllm", "id": 6})
    assert not f.matches({"engine": "deepspeed", "id": 3})
    assert parse_run_filter("id=3..").matches({"id": 9}) and not parse_run_filter("id=..2").matches({"id": 3})
    assert parse_run_filter(None) == RunFilter() == parse_run_filter("  ")


def test_model_key_matches_label_or_id_with_wildcards() -> None:
    f = parse_run_filter("model=llama-*")
    assert f.matches({"model": "meta-llama/Llama-3.2-1B", "model_label": "llama-3.2-1b"})
    assert parse_run_filter("model=meta-llama/*").matches({"model": "meta-llama/X", "model_label": None})
    assert not f.matches({"model": "Qwen/Qwen2", "model_label": "qwen2"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour=red", "unknown run filter key 'colour'"),
        ("engine", "bad run filter 'engine'"),
        ("engine=", "bad run filter 'engine='"),
        ("id=a..b", "bad value 'a..b' for id"),
        ("batch_size=big", "bad value 'big' for batch_size"),
    ],
)
def test_bad_filters_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_run_filter(text)
    assert info.value.exit_code == 2


def test_load_frames_selects_runs_and_their_rows(sample_db: Path) -> None:
    frames = load_frames(sample_db, "engine=vllm")
    assert list(frames.runs["engine"]) == ["vllm"]
    run_id = int(frames.runs["id"][0])
    assert set(frames.trials["run_id"]) == {run_id}
    assert len(frames.trials) == 3 + 3 + 1  # setup, generation, the failed one
    assert set(frames.stage_energy["trial_id"]) <= set(frames.trials["id"])
    assert len(frames.requests) == 3 * 4


def test_load_frames_does_not_change_the_database(sample_db: Path) -> None:
    before = sample_db.read_bytes()
    load_frames(sample_db)
    assert sample_db.read_bytes() == before


def test_missing_empty_newer_and_unmatched_databases(tmp_path: Path, sample_db: Path) -> None:
    with pytest.raises(StoreError, match="no results database"):
        load_frames(tmp_path / "absent.db")
    ResultsWriter(tmp_path / "empty.db").close()
    with pytest.raises(StoreError, match="holds no runs"):
        load_frames(tmp_path / "empty.db")
    newer = ResultsWriter(tmp_path / "newer.db", schema_version=SCHEMA_VERSION + 1)
    newer.run("vllm", "m")
    newer.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        load_frames(tmp_path / "newer.db")
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(StoreError, match="not a joulebench results database"):
        load_frames(tmp_path / "other.db")
    with pytest.raises(UsageError, match=r"no run .* matches --runs engine=tensorrt"):
        load_frames(sample_db, "engine=tensorrt")


def _value(metrics: pd.DataFrame, trial_id: int, stage: str, component: str, metric: str) -> float:
    rows = metrics[
        (metrics["trial_id"] == trial_id)
        & (metrics["stage"] == stage)
        & (metrics["component"] == component)
        & (metrics["metric"] == metric)
    ]
    assert len(rows) == 1, rows
    return float(rows["value"].iloc[0])


def test_trial_metrics_follow_the_definitions(sample_db: Path) -> None:
    frames = load_frames(sample_db, "engine=transformers")
    metrics = trial_metrics(frames)
    gen = frames.trials[(frames.trials["kind"] == "generation") & (frames.trials["status"] == "ok")]
    first = int(gen["id"].iloc[0])
    # Repeat 0 of transformers: gpu 1000 + cpu 400 + dram 40 = 1440 J over 10 s, 400 tokens, 4 requests.
    assert _value(metrics, first, "generate", "total", "energy_j") == pytest.approx(1440)
    assert _value(metrics, first, "generate", "total", "j_per_token") == pytest.approx(1440 / 400)
    assert _value(metrics, first, "generate", "total", "j_per_response") == pytest.approx(1440 / 4)
    assert _value(metrics, first, "generate", "total", "power_w") == pytest.approx(144)
    assert _value(metrics, first, "generate", "gpu", "j_per_token") == pytest.approx(1000 / 400)
    assert _value(metrics, first, "generate", "", "tokens_per_s") == pytest.approx(40)
    assert _value(metrics, first, "generate", "", "ttft_s") == pytest.approx(0.5)
    failed = frames.trials[frames.trials["status"] == "failed"]["id"]
    assert not metrics["trial_id"].isin(failed).any()


def _single_window_db(path: Path, energies: dict[str, float | None], estimated: tuple[str, ...] = ()) -> Path:
    w = ResultsWriter(path)
    run = w.run("vllm", "m")
    trial = w.trial(run, "generation", output_tokens=100, n_requests=2)
    w.window(trial, "generate", 4.0, energies, estimated=estimated)
    w.close()
    return path


def test_node_is_the_measured_total_when_measured(tmp_path: Path) -> None:
    db = _single_window_db(
        tmp_path / "n.db", {"gpu": 200.0, "cpu": 60.0, "dram": 8.0, "other": 132.0, "node": 400.0}
    )
    metrics = trial_metrics(load_frames(db))
    total = metrics[(metrics["component"] == "total") & (metrics["metric"] == "energy_j")]
    assert list(total["value"]) == [400.0]
    assert list(total["method"]) == ["node"]


def test_estimated_components_stay_out_of_the_measured_total(tmp_path: Path) -> None:
    db = _single_window_db(tmp_path / "e.db", {"gpu": 200.0, "cpu": 50.0, "dram": None}, estimated=("cpu",))
    metrics = trial_metrics(load_frames(db))
    energy = metrics[metrics["metric"] == "energy_j"].set_index("component")
    assert energy.loc["total", "value"] == 200.0
    assert not energy.loc["total", "estimated"]
    assert energy.loc["total_incl_estimated", "value"] == 250.0
    assert energy.loc["total_incl_estimated", "estimated"]
    assert energy.loc["cpu", "estimated"]
    assert "dram" not in energy.index  # NULL energy: not measurable, never 0


def test_devices_are_summed_when_no_all_row(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "d.db")
    trial = w.trial(w.run("vllm", "m"), "generation", output_tokens=10, n_requests=1)
    for device, energy in (("gpu0", 30.0), ("gpu1", 12.0)):
        w.conn.execute(
            "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j, method,"
            " estimated) VALUES (?, 'generate', 'gpu', ?, 0, 2, ?, 'counter', 0)",
            (trial, device, energy),
        )
    w.close()
    metrics = trial_metrics(load_frames(tmp_path / "d.db"))
    gpu = metrics[(metrics["component"] == "gpu") & (metrics["metric"] == "j_per_token")]
    assert list(gpu["value"]) == [pytest.approx(4.2)]


def test_runs_of_one_engine_set_up_differently_keep_apart(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "l.db")
    runs = {
        "vllm": w.run("vllm", "m"),
        "vllm:tp2": w.run("vllm", "m", tensor_parallel=2),
        "vllm:unmonitored": w.run("vllm", "m", config={"monitor": False}),
        "transformers:compile=True": w.run("transformers", "m", config={"engine_options": {"compile": True}}),
        "transformers:eager": w.run("transformers", "m", config={"label": "eager", "monitor": False}),
    }
    for run_id in runs.values():
        trial = w.trial(run_id, "generation", output_tokens=10, n_requests=1)
        w.conn.execute(
            "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j, method,"
            " estimated) VALUES (?, 'generate', 'gpu', 'all', 0, 2, 5.0, 'counter', 0)",
            (trial,),
        )
    w.close()
    frames = load_frames(tmp_path / "l.db")
    metrics = trial_metrics(frames)
    assert dict(zip(metrics["run_id"], metrics["engine"], strict=True)) == {v: k for k, v in runs.items()}
    assert [row[1] for row in runs_table(frames).rows] == list(runs)


def test_setup_trials_with_cold_and_warm_caches_keep_apart(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "c.db")
    vllm, hf = w.run("vllm", "m"), w.run("transformers", "m")
    trials = {
        w.trial(vllm, "setup", 0, cache_state="warm", compile_cache="cold"): "vllm (cold compile cache)",
        w.trial(vllm, "setup", 1, cache_state="warm", compile_cache="warm"): "vllm (warm compile cache)",
        w.trial(vllm, "setup", 2, cache_state="warm", compile_cache="warm"): "vllm (warm compile cache)",
        w.trial(hf, "setup", 0, cache_state="cold", compile_cache="none"): "transformers (cold page cache)",
        w.trial(hf, "setup", 1, cache_state="warm", compile_cache="none"): "transformers (warm page cache)",
    }
    for trial in trials:
        w.window(trial, "setup", 10.0, {"gpu": 1000.0})
    generation = w.trial(vllm, "generation", output_tokens=10, n_requests=1)
    w.window(generation, "generate", 1.0, {"gpu": 5.0})
    w.close()
    metrics = trial_metrics(load_frames(tmp_path / "c.db"))
    assert dict(zip(metrics["trial_id"], metrics["engine"], strict=False)) == {**trials, generation: "vllm"}


def test_load_trace_skips_non_reading_lines(sample_db: Path) -> None:
    frames = load_frames(sample_db, "engine=transformers")
    setup_trial = int(frames.trials[frames.trials["kind"] == "setup"]["id"].iloc[0])
    trace = load_trace(sample_db, setup_trial)
    assert trace and all("t_s" in r for r in trace)
    assert [r["t_s"] for r in trace] == sorted(r["t_s"] for r in trace)
    assert load_trace(sample_db, 10_000) == []


def test_per_response_figures_count_successful_requests_as_the_runner_does(tmp_path: Path) -> None:
    # 4 requests, one failed: its tokens are not in the trial's count, and it gave no response.
    w = ResultsWriter(tmp_path / "f.db")
    trial = w.trial(w.run("vllm", "m"), "generation", output_tokens=300, n_requests=4)
    w.window(trial, "generate", 3.0, {"gpu": 600.0})
    for r in range(3):
        w.request(trial, r, 100, ttft_s=0.1, tpot_s=0.01)
    w.conn.execute(
        "INSERT INTO requests (trial_id, request_index, output_tokens, error) VALUES (?, 3, 0, 'boom')",
        (trial,),
    )
    w.close()
    metrics = trial_metrics(load_frames(tmp_path / "f.db"))
    assert _value(metrics, trial, "generate", "total", "j_per_response") == pytest.approx(200.0)
    assert _value(metrics, trial, "generate", "gpu", "j_per_token") == pytest.approx(2.0)
    assert _value(metrics, trial, "generate", "", "output_tokens_per_response") == pytest.approx(100.0)
    assert _value(metrics, trial, "generate", "", "n_requests") == 4

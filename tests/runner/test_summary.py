"""The run summary is computed from the database rows alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.measurement.records import Component, ComponentEnergy, Method, StageResult
from joulebench.runner.summary import summarize_run
from joulebench.store.db import ResultsDB
from joulebench.store.rows import TrialRow, stage_rows


def _gpu(energy: float) -> tuple[ComponentEnergy, ...]:
    return (ComponentEnergy(Component.GPU, "all", energy, 1.0, None, None, Method.COUNTER),)


def test_summary_from_rows(tmp_path: Path) -> None:
    with ResultsDB(tmp_path / "r.db") as db:
        run_id = db.create_run(
            engine="vllm", model="m", workload="w", batch_size=2, output_tokens=4, length_mode="fixed",
            device="cuda", config={}, environment={"energy_note": None},
        )  # fmt: skip
        # vLLM reports engine_init in two pieces around model_load
        stages = (
            stage_rows(StageResult("engine_init", 0.0, 2.0, _gpu(20.0)))
            + stage_rows(StageResult("model_load", 2.0, 3.0, _gpu(30.0)))
            + stage_rows(StageResult("engine_init", 3.0, 7.0, _gpu(40.0)))
        )
        db.add_trial(run_id, TrialRow("setup", 0, "ok", 0.0, duration_s=7.0), stages)
        for i, jpt in enumerate([1.0, 1.5, 2.0]):
            metrics = {"j_per_token.total": jpt, "tokens_per_s": 100.0, "steady_available": False}
            metrics["steady_reason"] = "engine gives no per-request token times"
            db.add_trial(run_id, TrialRow("generation", i, "ok", 0.0, details={"metrics": metrics}))
        db.add_trial(run_id, TrialRow("generation", 3, "failed", 0.0, error="worker killed by SIGKILL\ntail"))
        db.finish_run(run_id, "partial")
        s = summarize_run(db, run_id)

    init = s["setup"]["stages"]["engine_init"]
    assert init["duration_s"]["mean"] == pytest.approx(6.0)  # 2 s + 4 s, not 7 s
    assert init["energy_j"]["gpu"]["mean"] == pytest.approx(60.0)
    assert s["setup"]["stages"]["model_load"]["energy_j"]["total"]["mean"] == pytest.approx(30.0)
    jpt = s["generation"]["metrics"]["j_per_token.total"]
    assert (jpt["n"], jpt["mean"]) == (3, pytest.approx(1.5))
    assert s["generation"]["ok"] == 3 and s["generation"]["repeats"] == 4
    assert s["generation"]["steady_unavailable"] == ["engine gives no per-request token times"]
    assert any(w.startswith("j_per_token.total: CV") for w in s["warnings"])
    assert not any(w.startswith("tokens_per_s") for w in s["warnings"])  # identical values: stable
    assert s["failures"] == [{"kind": "generation", "repeat_index": 3, "error": "worker killed by SIGKILL"}]
    assert s["status"] == "partial"


def _gpu_cpu(gpu: float, cpu: float | None) -> tuple[ComponentEnergy, ...]:
    return (
        ComponentEnergy(Component.GPU, "all", gpu, 1.0, None, None, Method.COUNTER),
        ComponentEnergy(Component.CPU, "all", cpu, 1.0, None, None, Method.COUNTER),
    )


def test_a_stage_in_pieces_agrees_with_the_report(tmp_path: Path) -> None:
    from joulebench.results.tidy import trial_metrics
    from joulebench.store.frames import load_frames

    # engine_init in two pieces; the CPU could not be measured in the second (too short for its counter)
    with ResultsDB(tmp_path / "r.db") as db:
        run_id = db.create_run(
            engine="vllm", model="m", workload="w", batch_size=2, output_tokens=4, length_mode="fixed",
            device="cuda", config={}, environment={},
        )  # fmt: skip
        stages = stage_rows(StageResult("engine_init", 0.0, 2.0, _gpu_cpu(20.0, 10.0)))
        stages += stage_rows(StageResult("engine_init", 3.0, 7.0, _gpu_cpu(40.0, None)))
        db.add_trial(run_id, TrialRow("setup", 0, "ok", 0.0, duration_s=7.0), stages)
        s = summarize_run(db, run_id)

    init = s["setup"]["stages"]["engine_init"]
    # the CPU is left out (not measured over the whole stage), never its measured piece alone
    assert set(init["energy_j"]) == {"gpu", "total"}
    assert init["energy_j"]["total"]["mean"] == pytest.approx(60.0)
    metrics = trial_metrics(load_frames(tmp_path / "r.db"))
    energy = metrics[(metrics["stage"] == "engine_init") & (metrics["metric"] == "energy_j")]
    assert dict(zip(energy["component"], energy["value"], strict=True)) == {
        c: v["mean"] for c, v in init["energy_j"].items()
    }
    duration = metrics[(metrics["stage"] == "engine_init") & (metrics["metric"] == "duration_s")]
    assert list(duration["value"]) == [pytest.approx(init["duration_s"]["mean"])] == [pytest.approx(6.0)]

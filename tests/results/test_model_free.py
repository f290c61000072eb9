"""Which setup stages are pooled over models is the engine's to say: import and engine initialisation for
most (the paper's Table 1), import alone for TensorRT-LLM, whose engine initialisation is the whole LLM(...)
call that reads the weights and builds the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.results.aggregate import ALL_MODELS, summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter

pytest.importorskip("pandas")


def test_tensorrt_llm_engine_init_stays_with_its_model(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    for engine in ("vllm", "tensorrt-llm"):
        for model, init_j in (("llama-1b", 100.0), ("llama-8b", 900.0)):
            run = w.run(engine, model)
            for k in range(2):
                trial = w.trial(run, "setup", repeat_index=k)
                w.window(trial, "import", 2.0, {"gpu": 10.0})
                w.window(trial, "engine_init", 5.0, {"gpu": init_j})
                w.window(trial, "setup", 9.0, {"gpu": init_j + 50.0})
    w.close()
    summary = summarize_metrics(trial_metrics(load_frames(tmp_path / "r.db")))
    init = summary[(summary["stage"] == "engine_init") & (summary["metric"] == "energy_j")
                   & (summary["component"] == "gpu")]  # fmt: skip
    by = {(r["engine"], r["model"]): (r["n"], r["mean"]) for r in init.to_dict("records")}
    assert by == {
        ("vllm", ALL_MODELS): (4, 500.0),  # one figure for the engine, over both models
        ("tensorrt-llm", "llama-1b"): (2, 100.0),  # the model's own
        ("tensorrt-llm", "llama-8b"): (2, 900.0),
    }
    imports = summary[(summary["stage"] == "import") & (summary["metric"] == "energy_j")]
    assert set(imports["model"]) == {ALL_MODELS}

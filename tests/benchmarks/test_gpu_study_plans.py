"""The GPU study's committed plans are checked here, where a typo costs nothing, rather
than on a booked GPU machine, where it costs a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.runner.prepare import check_config
from joulebench.sweep.cells import expand
from joulebench.sweep.plan import load_plan

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_study"
PLANS = sorted([*STUDY.glob("*.yaml"), *STUDY.glob("*/*.yaml")])
GPUS = 4  # the largest host the study runs on


def test_the_study_has_plans_and_no_lane_scripts() -> None:
    """Parts run as `joulebench sweep PLAN... --executor ray`; the bash lanes that ran parts 2-6 are kept
    with the results they produced, not here."""
    assert len(PLANS) > 10
    assert not [p for p in STUDY.rglob("*") if p.suffix in (".sh", ".lanes")]


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_plan_loads_and_its_cells_pass_the_runners_checks(path: Path) -> None:
    cells = expand(load_plan(path), gpus=GPUS)
    assert cells
    for cell in cells:
        check_config(cell.config)
        assert cell.config.device == "cuda"
        assert Path(cell.config.model).parent.name == "models"  # made by `joulebench model create`


def test_the_multi_gpu_plans_fit_a_host_of_four() -> None:
    """The multi-GPU plans run as one sweep through Ray, one cell per GPU set: every cell asks for GPUs a
    host of four has, and the paper's cells are there, one GPU each."""
    from joulebench.sweep.cells import group

    cells = [
        c for plan in sorted((STUDY / "multi-gpu").glob("*.yaml")) for c in expand(load_plan(plan), GPUS)
    ]
    groups = group(cells)
    assert all(1 <= g.num_gpus <= GPUS for g in groups)
    paper = {
        (c.config.engine, Path(c.config.model).name, c.workload.name)
        for c in cells
        if c.engine.num_gpus == 1 and c.engine.variant is None
    }
    assert paper == {
        (e, m, w)
        for e in ("transformers", "deepspeed", "vllm")
        for m in ("llama-3.2-1b", "llama-3.1-8b")
        for w in ("high-concurrency", "high-throughput")  # 256 x 500, 256 x 2,000
    }
    assert sorted(c.config.tensor_parallel for c in cells if c.engine.variant in ("tp1", "tp2", "tp4")) == [
        1,
        2,
        4,
    ]

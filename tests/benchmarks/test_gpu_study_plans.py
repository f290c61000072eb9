"""The GPU study's committed plans and lane tables are checked here, where a typo costs nothing, rather
than on a booked GPU machine, where it costs a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.runner.prepare import check_config
from joulebench.sweep.cells import expand
from joulebench.sweep.plan import load_plan

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_study"
PLANS = sorted([*STUDY.glob("*.yaml"), *(STUDY / "four-gpu").glob("*.yaml")])
LANES = sorted((STUDY / "four-gpu").glob("*.lanes"))
GPUS = 4  # the lanes' machine


def test_the_study_has_plans_and_lanes() -> None:
    assert len(PLANS) > 10 and len(LANES) >= 4


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_plan_loads_and_its_cells_pass_the_runners_checks(path: Path) -> None:
    cells = expand(load_plan(path), gpus=GPUS)
    assert cells
    for cell in cells:
        check_config(cell.config)
        assert cell.config.device == "cuda"
        assert Path(cell.config.model).parent.name == "models"  # made by `joulebench model create`


def _lanes(table: Path) -> list[tuple[str, str, list[int], list[str], list[str]]]:
    rows = []
    for line in table.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        phase, name, gpus, after, *plans = line.split()
        waits = [] if after == "-" else after.split(",")
        rows.append((phase, name, [int(g) for g in gpus.split(",")], waits, plans))
    return rows


@pytest.mark.parametrize("table", LANES, ids=lambda p: p.name)
def test_every_lane_names_existing_plans_on_gpus_that_fit_them(table: Path) -> None:
    rows = _lanes(table)
    assert rows
    seen: set[str] = set()
    for phase, name, gpus, waits, plans in rows:
        assert phase in ("start", "vllm") and name not in seen and plans
        assert set(waits) <= seen, f"{name} waits for a lane not started before it"
        assert all(0 <= g < GPUS for g in gpus) and len(set(gpus)) == len(gpus)
        for plan in plans:
            cells = expand(load_plan(STUDY / "four-gpu" / plan), gpus=GPUS)
            assert all(c.config.tensor_parallel <= len(gpus) for c in cells), f"{plan} on lane {name}"
            if phase == "start":  # vLLM is brought to the machine only for the lanes of phase "vllm"
                assert all(c.config.engine != "vllm" for c in cells), f"{plan} on lane {name}"
        seen.add(name)

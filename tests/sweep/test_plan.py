from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from joulebench.errors import UsageError
from joulebench.sweep.plan import EngineEntry, PlanError, WorkloadEntry, load_plan, parse_plan

GOOD = """
name: demo
repeats: 2
setup_repeats: 0
device: cpu
defaults: {idle_s: 0, length_mode: fixed}
engines:
  - transformers
  - {name: transformers, variant: compiled, options: {compile: true}}
  - {name: vllm, tensor_parallel: 2, device: cuda, num_cpus: 4}
models: [./tiny, smollm2-135m]
workloads:
  - smoke
  - {name: smoke, batch_size: 3, output_tokens: 8}
"""


def test_a_good_plan_keeps_every_setting(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(GOOD)
    plan = load_plan(path)
    assert plan.name == "demo"
    assert (plan.repeats, plan.setup_repeats, plan.device) == (2, 0, "cpu")
    assert plan.defaults == {"idle_s": 0, "length_mode": "fixed"}
    assert plan.engines == (
        EngineEntry("transformers"),
        EngineEntry("transformers", variant="compiled", options={"compile": True}),
        EngineEntry("vllm", tensor_parallel=2, device="cuda", num_cpus=4.0),
    )
    assert plan.engines[1].label == "transformers:compiled"
    assert plan.models == ("./tiny", "smollm2-135m")
    assert plan.workloads == (
        WorkloadEntry("smoke"),
        WorkloadEntry("smoke", {"batch_size": 3, "output_tokens": 8}),
    )
    assert plan.workloads[1].label == "smoke[batch_size=3,output_tokens=8]"
    assert plan.base_dir == tmp_path.resolve()


def test_every_problem_is_listed_one_per_line() -> None:
    data = yaml.safe_load(GOOD)
    data["colour"] = "red"
    data["repeats"] = 0
    data["engines"][1]["tensor_paralel"] = 2
    data["engines"][2]["tensor_parallel"] = "two"
    data["engines"][2]["device"] = "tpu"
    data["workloads"][1]["batch"] = 4
    data["defaults"]["engine"] = "vllm"
    data["defaults"]["idle_s"] = "long"
    with pytest.raises(PlanError) as err:
        parse_plan(data, Path("."), source="p.yaml")
    problems = err.value.problems
    assert all("\n" not in p for p in problems)
    expected = [
        "unknown key 'colour'",
        "repeats: must be at least 1",
        "engines[1]: unknown key 'tensor_paralel'",
        "engines[2].tensor_parallel: 'two' is not a valid value",
        "engines[2].device: must be one of auto, cpu, cuda",
        "workloads[1]: unknown key 'batch'",
        "defaults.engine is set per engine",
        "defaults.idle_s: 'long' is not a valid value",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected)
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2


def test_missing_sections_and_wrong_shapes() -> None:
    with pytest.raises(PlanError) as err:
        parse_plan({"engines": "vllm", "models": [], "workloads": [{"batch_size": 2}]}, Path("."))
    problems = "\n".join(err.value.problems)
    assert "engines must be a list" in problems
    assert "'models' is missing or empty" in problems
    assert "workloads[0]: a workload is a preset name" in problems
    with pytest.raises(PlanError, match="a plan is a mapping"):
        parse_plan(["vllm"], Path("."))


def test_an_engine_listed_twice_needs_a_variant() -> None:
    data = {"engines": ["vllm", {"name": "vllm"}], "models": ["m"], "workloads": ["smoke"]}
    with pytest.raises(PlanError, match="listed twice"):
        parse_plan(data, Path("."))
    data["engines"][1]["variant"] = "b"
    assert len(parse_plan(data, Path(".")).engines) == 2


def test_unreadable_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="plan file not found"):
        load_plan(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("engines: [vllm\nmodels: x\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_plan(bad)

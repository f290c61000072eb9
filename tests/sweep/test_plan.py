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
    data["engines"][1]["warmup_tokens"] = 0
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
        "engines[1].warmup_tokens: must be at least 1",
    ]
    _each_once(problems, expected)
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


def test_engine_entries_override_repeats_and_monitoring_and_setup_runs_once_per_engine_and_model(
    tmp_path: Path,
) -> None:
    from joulebench.sweep.cells import expand, group

    (tmp_path / "tiny").mkdir()
    (tmp_path / "plan.yaml").write_text(
        GOOD.replace("setup_repeats: 0", "setup_repeats: 4").replace(
            "  - transformers\n",
            "  - {name: transformers, repeats: 5, setup_repeats: 1}\n"
            "  - {name: transformers, variant: unmonitored, monitor: false, warmup_tokens: 2}\n",
        )
    )
    plan = load_plan(tmp_path / "plan.yaml")
    assert plan.engines[0] == EngineEntry("transformers", repeats=5, setup_repeats=1)
    assert plan.engines[1].monitor is False
    cells = [c for c in expand(plan, gpus=0) if c.engine.variant in (None, "unmonitored")]
    cells = [c for c in cells if c.engine.name == "transformers"]
    by_entry = {(c.engine.label, c.config.model, c.workload.label): c.config for c in cells}
    tiny = str((tmp_path / "tiny").resolve())
    first = by_entry[("transformers", tiny, "smoke")]
    second = by_entry[("transformers", tiny, "smoke[batch_size=3,output_tokens=8]")]
    assert (first.repeats, first.setup_repeats, first.monitor) == (5, 1, True)
    assert (second.repeats, second.setup_repeats) == (5, 0)  # setup belongs to the engine and model
    unmonitored = by_entry[("transformers:unmonitored", tiny, "smoke")]
    assert (unmonitored.monitor, unmonitored.setup_repeats, unmonitored.repeats) == (False, 4, 2)
    assert (unmonitored.warmup_tokens, first.warmup_tokens) == (2, None)
    # the two workloads of one entry and model still share one engine start
    assert len({g.key for g in group(cells)}) == 4


def test_engine_environments_are_checked_and_merged_over_the_defaults(tmp_path: Path) -> None:
    from joulebench.sweep.cells import expand

    data = yaml.safe_load(GOOD)
    data["defaults"]["engine_env"] = {"OMP_NUM_THREADS": 4, "TOKENIZERS_PARALLELISM": "false"}
    data["engines"][1]["env"] = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "OMP_NUM_THREADS": 2}
    plan = parse_plan(data, tmp_path)
    assert plan.engines[1].env == {
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "OMP_NUM_THREADS": "2",
    }
    envs = {c.engine.label: c.config.engine_env for c in expand(plan, gpus=0)}
    assert envs["transformers"] == {"OMP_NUM_THREADS": "4", "TOKENIZERS_PARALLELISM": "false"}
    assert envs["transformers:compiled"] == {
        "OMP_NUM_THREADS": "2",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }


def test_bad_engine_environments_are_listed() -> None:
    data = yaml.safe_load(GOOD)
    data["engines"][0] = {"name": "transformers", "env": {"1BAD": "x", "OK": ["a"], "HF_TOKEN": "hf_x"}}
    data["engines"][2]["env"] = "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
    data["defaults"]["engine_env"] = {"VLLM_API_KEY": "k"}
    with pytest.raises(PlanError) as err:
        parse_plan(data, Path("."), source="p.yaml")
    problems = err.value.problems
    expected = [
        "engines[0].env: '1BAD' is not an environment variable name",
        "engines[0].env.OK: ['a'] is not a value",
        "engines[0].env.HF_TOKEN: looks like a secret",
        "engines[2].env: must be a mapping",
        "defaults.engine_env.VLLM_API_KEY: looks like a secret",
    ]
    _each_once(problems, expected)


def _each_once(problems: list[str], expected: list[str]) -> None:
    """Every expected fragment is in some problem line, and there is no other problem."""
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently: `repeats: 1` then `repeats: 5` ran five."""
    plan = tmp_path / "p.yaml"
    body = (
        "engines:\n  - name: transformers\n    dtype: float32\n{}models: [smollm2-135m]\nworkloads: [smoke]\n"
    )
    plan.write_text("repeats: 1\n" + body.format("    dtype: bfloat16\n"))
    with pytest.raises(UsageError, match=r"key 'dtype' is given twice \(lines 4 and 5\)"):
        load_plan(plan)
    plan.write_text("repeats: 1\n" + body.format("") + "repeats: 5\n")
    with pytest.raises(UsageError, match=r"key 'repeats' is given twice \(lines 1 and 7\)"):
        load_plan(plan)


def test_a_workload_file_with_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    from joulebench.errors import DatasetError
    from joulebench.workloads.presets import load_workload_file

    path = tmp_path / "w.yaml"
    path.write_text("name: mine\nbatch_size: 4\nbatch_size: 400\n")
    with pytest.raises(DatasetError, match=r"key 'batch_size' is given twice \(lines 2 and 3\)"):
        load_workload_file(path)


def test_an_engine_entry_sets_its_setup_factors_parking_and_sleep_levels(tmp_path: Path) -> None:
    """What a lifecycle plan asks of each engine reaches its cells, and a continued cell runs the setup grid
    as many more times as it lacks, and parks only as many times as it lacks."""
    from joulebench.sweep.cells import expand
    from joulebench.sweep.state import Tally, remainder

    (tmp_path / "tiny").mkdir()
    (tmp_path / "plan.yaml").write_text(
        GOOD.replace("setup_repeats: 0", "setup_repeats: 2").replace(
            "  - transformers\n",
            "  - {name: transformers, park_s: 5,\n"
            "     setup_factors: {page_cache: [cold, warm], loader: [to_device]}}\n",
        )
    )
    plan = load_plan(tmp_path / "plan.yaml")
    assert plan.engines[0].setup_factors == {"page_cache": ["cold", "warm"], "loader": ["to_device"]}
    (config, *_) = [c.config for c in expand(plan, gpus=0) if c.engine.name == "transformers"]
    assert config.setup_factors == {"page_cache": ["cold", "warm"], "loader": ["to_device"]}
    assert (config.park_s, config.sleep_levels, config.setup_trials) == (5.0, [], 4)
    # one whole grid (2 trials) done of two: one more; repeats and parks all done, so neither again
    rest = remainder(config, Tally(setup=2, repeats=config.repeats, parked=config.repeats))
    assert rest is not None and (rest.setup_repeats, rest.repeats, rest.lifecycle_cycles) == (1, 0, 0)
    with pytest.raises(PlanError, match="park_s"):
        bad = GOOD.replace("  - transformers\n", "  - {name: transformers, park_s: soon}\n")
        parse_plan(yaml.safe_load(bad), tmp_path)

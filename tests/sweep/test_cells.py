from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from joulebench.sweep.cells import expand, group, resolve_device, sweep_key
from joulebench.sweep.plan import Plan, parse_plan

PLAN = """
repeats: 2
setup_repeats: 1
defaults: {idle_s: 0}
engines:
  - transformers
  - {name: transformers, variant: compiled, options: {compile: true}}
models: [./tiny]
workloads:
  - smoke
  - {name: smoke, batch_size: 3}
"""


def _plan(tmp_path: Path, text: str = PLAN, **changes: object) -> Plan:
    data = yaml.safe_load(text)
    data.update(changes)
    return parse_plan(data, tmp_path)


def test_cells_cross_engines_models_and_workloads(tmp_path: Path) -> None:
    cells = expand(_plan(tmp_path), gpus=0)
    assert [(c.engine.label, c.workload.label) for c in cells] == [
        ("transformers", "smoke"),
        ("transformers", "smoke[batch_size=3]"),
        ("transformers:compiled", "smoke"),
        ("transformers:compiled", "smoke[batch_size=3]"),
    ]
    first, second, third, _ = (c.config for c in cells)
    assert first.model == str((tmp_path / "tiny").resolve())  # relative to the plan, made absolute
    assert (first.repeats, first.setup_repeats, first.idle_s, first.device) == (2, 1, 0, "cpu")
    assert first.batch_size is None and second.batch_size == 3
    assert third.engine_options == {"compile": True}
    assert all(c.config.sweep_key == c.key for c in cells)


def test_keys_are_stable_and_tell_cells_apart(tmp_path: Path) -> None:
    keys = [c.key for c in expand(_plan(tmp_path), gpus=0)]
    assert keys == [c.key for c in expand(_plan(tmp_path), gpus=0)]
    assert len(set(keys)) == 4
    # the variant alone separates two otherwise equal engine entries
    twins = _plan(tmp_path, engines=["vllm", {"name": "vllm", "variant": "x"}])
    a, b = (c.config for c in expand(twins, gpus=0)[::2])
    assert (a.label, b.label) == (None, "x")  # the run keeps its variant for reports
    assert replace(a, sweep_key=None) == replace(b, sweep_key=None, label=None)
    assert a.sweep_key == sweep_key(a, None) != sweep_key(a, "x") == b.sweep_key == sweep_key(b, "x")
    # anything that changes the cell changes its key
    more = [c.key for c in expand(_plan(tmp_path, repeats=3), gpus=0)]
    assert set(more).isdisjoint(keys)


def test_cells_group_by_engine_start(tmp_path: Path) -> None:
    groups = group(expand(_plan(tmp_path), gpus=0))
    assert [[c.workload.label for c in g.cells] for g in groups] == [["smoke", "smoke[batch_size=3]"]] * 2
    assert [g.engine.label for g in groups] == ["transformers", "transformers:compiled"]
    assert all(g.num_gpus == 0 for g in groups)


def test_device_auto_follows_the_gpus_and_tensor_parallel_asks_for_gpus(tmp_path: Path) -> None:
    assert resolve_device("auto", 0) == "cpu" and resolve_device("auto", 2) == "cuda"
    assert resolve_device("cpu", 2) == "cpu"
    plan = _plan(tmp_path, engines=[{"name": "vllm", "tensor_parallel": 2}])
    cells = expand(plan, gpus=2)
    assert {c.config.device for c in cells} == {"cuda"}
    assert {c.config.tensor_parallel for c in cells} == {2}
    assert group(cells)[0].num_gpus == 2


def test_keys_of_cells_without_an_engine_environment_are_the_ones_stored_before_it_existed(
    tmp_path: Path,
) -> None:
    from joulebench.runner.config import RunConfig

    # a cell's key, as a sweep stored it before engine_env was a setting: resume must still find it
    config = RunConfig(engine="vllm", model="/m/llama", workload="standard", repeats=3)
    assert sweep_key(config, "eager") == "76611c18c0537895"
    # an environment makes another cell
    assert sweep_key(replace(config, engine_env={"A": "1"}), "eager") != "76611c18c0537895"

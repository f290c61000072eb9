from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.errors import DatasetError, UsageError
from joulebench.workloads.presets import PRESETS, Workload, resolve_workload
from joulebench.workloads.spec import SamplingSpec


@pytest.mark.parametrize(
    ("name", "batch", "tokens"),
    [("standard", 128, 500), ("high-concurrency", 256, 500), ("high-throughput", 256, 2000)],
)
def test_paper_presets(name: str, batch: int, tokens: int) -> None:
    w = resolve_workload(name)
    assert (w.name, w.batch_size, w.output_tokens, w.length_mode) == (name, batch, tokens, "fixed")
    assert (w.temperature, w.top_p, w.dataset) == (0.8, 0.95, "alpaca")


def test_smoke_is_small_natural_and_chat() -> None:
    w = resolve_workload("smoke")
    assert w.batch_size <= 8 and w.output_tokens <= 64
    assert w.length_mode == "natural" and w.chat_template
    assert w.sampling() == SamplingSpec(max_output_tokens=w.output_tokens, length_mode="natural", seed=0)
    assert not w.sampling().ignore_eos


def test_overrides() -> None:
    w = resolve_workload("standard", batch_size=8, output_tokens=16, length_mode="natural", top_p=0.5)
    assert (w.batch_size, w.output_tokens, w.length_mode, w.top_p) == (8, 16, "natural", 0.5)
    assert resolve_workload("standard", temperature=0.0).temperature == 0.0
    sampling = resolve_workload("high-throughput", length_mode="fixed").sampling()
    assert sampling.ignore_eos and sampling.max_output_tokens == 2000


def test_presets_are_frozen() -> None:
    with pytest.raises(AttributeError):
        PRESETS["standard"].batch_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"output_tokens": -5}, "output_tokens must be >= 1"),
        ({"length_mode": "eos"}, "length_mode must be fixed or natural"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
    ],
)
def test_bad_overrides(overrides: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_workload("standard", **overrides)


def test_unknown_preset() -> None:
    with pytest.raises(UsageError, match=r"unknown workload 'huge'.*standard, high-concurrency"):
        resolve_workload("huge")


def test_yaml_workload(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(
        "name: long-outputs\nbase: high-concurrency\noutput_tokens: 1000\nlength_mode: natural\n"
        "dataset: synthetic:fixed:64\nseed: 7\nchat_template: true\n"
    )
    assert resolve_workload(str(path)) == Workload(
        name="long-outputs",
        batch_size=256,
        output_tokens=1000,
        length_mode="natural",
        dataset="synthetic:fixed:64",
        seed=7,
        chat_template=True,
    )
    assert resolve_workload(str(path), batch_size=2).batch_size == 2


def test_yaml_name_defaults_to_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yml"
    path.write_text("batch_size: 2\noutput_tokens: 8\n")
    w = resolve_workload(str(path))
    assert (w.name, w.batch_size, w.output_tokens, w.temperature) == ("tiny", 2, 8, 0.8)


def test_yaml_problems_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("batch: 4\noutput_tokens: many\ntop_p: 0.9\nchat_template: 1\nbase: giant\n")
    with pytest.raises(DatasetError) as info:
        resolve_workload(str(path))
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "unknown key 'batch'" in lines[0]
    assert any("base: unknown preset 'giant'" in line for line in lines)
    assert any("output_tokens: expected int, got 'many'" in line for line in lines)
    assert any("chat_template: expected bool, got 1" in line for line in lines)


def test_yaml_value_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("batch_size: 0\nlength_mode: forever\n")
    with pytest.raises(DatasetError) as info:
        resolve_workload(str(path))
    assert str(info.value).splitlines() == [
        f"{path}: batch_size must be >= 1, got 0",
        f"{path}: length_mode must be fixed or natural, got 'forever'",
    ]


@pytest.mark.parametrize(
    ("text", "message"), [("- a\n- b\n", "expected a mapping"), ("a: [\n", "not valid YAML")]
)
def test_yaml_not_a_mapping(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        resolve_workload(str(path))


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="workload file not found"):
        resolve_workload(str(tmp_path / "nope.yaml"))

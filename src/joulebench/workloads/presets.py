"""Workload presets (the paper's three shapes plus a CPU-sized smoke test) and user-defined ones in YAML.

A YAML workload file holds one mapping; every key is optional except that the result must be complete,
and ``base`` starts from a built-in preset::

    name: long-prompts
    base: standard          # start from a preset (default: standard)
    batch_size: 64
    output_tokens: 256
    length_mode: fixed      # fixed: ignore EOS, always output_tokens; natural: stop at EOS
    dataset: alpaca         # see joulebench.workloads.datasets
    temperature: 0.8
    top_p: 0.95
    seed: 0
    chat_template: false    # wrap prompts in the model's chat template
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from joulebench.errors import DatasetError, UsageError
from joulebench.workloads.spec import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, LengthMode, SamplingSpec

LENGTH_MODES = ("fixed", "natural")


@dataclass(frozen=True)
class Workload:
    """What one benchmark run sends: ``batch_size`` prompts from ``dataset``, ``output_tokens`` each."""

    name: str
    batch_size: int
    output_tokens: int
    length_mode: LengthMode = "fixed"
    dataset: str = "alpaca"
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int = 0
    chat_template: bool = False

    def sampling(self) -> SamplingSpec:
        return SamplingSpec(
            max_output_tokens=self.output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            length_mode=self.length_mode,
            seed=self.seed,
        )


PRESETS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("standard", batch_size=128, output_tokens=500),
        Workload("high-concurrency", batch_size=256, output_tokens=500),
        Workload("high-throughput", batch_size=256, output_tokens=2000),
        # Small enough for a CPU and CI; natural length, so a real Instruct model's EOS ends each reply.
        Workload("smoke", batch_size=4, output_tokens=32, length_mode="natural", chat_template=True),
    )
}

_KEYS = {f.name for f in fields(Workload)} | {"base"}


def resolve_workload(
    name_or_path: str,
    *,
    batch_size: int | None = None,
    output_tokens: int | None = None,
    length_mode: str | None = None,
    dataset: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
) -> Workload:
    """A preset name or a YAML file, with any non-``None`` override applied, validated."""
    if name_or_path in PRESETS:
        workload = PRESETS[name_or_path]
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).expanduser().is_file():
        workload = load_workload_file(Path(name_or_path).expanduser())
    else:
        raise UsageError(f"unknown workload {name_or_path!r}: use one of {', '.join(PRESETS)} or a YAML file")
    overrides = {
        "batch_size": batch_size,
        "output_tokens": output_tokens,
        "length_mode": length_mode,
        "dataset": dataset,
        "temperature": temperature,
        "top_p": top_p,
    }
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    workload = replace(workload, **given)
    problems = validate(workload)
    if problems:
        raise UsageError(f"workload {workload.name}: {problems[0]}")
    return workload


def load_workload_file(path: Path) -> Workload:
    """A user-defined workload; every problem in the file is listed, one line each, in the error."""
    import yaml

    if not path.is_file():
        raise DatasetError(f"workload file not found: {path}")
    from joulebench import yamlfile

    try:
        data = yamlfile.load(path.read_text(encoding="utf-8"))
    except yamlfile.DuplicateKeyError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping of workload keys, got {type(data).__name__}")
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(_KEYS))})" for k in data if k not in _KEYS]
    base_name = data.get("base", "standard")
    if base_name not in PRESETS:
        problems.append(f"base: unknown preset {base_name!r} ({', '.join(PRESETS)})")
        base_name = "standard"
    values = {k: v for k, v in data.items() if k in _KEYS and k != "base"}
    values.setdefault("name", path.stem)
    problems += _type_problems(values)
    if not problems:
        problems = validate(replace(PRESETS[base_name], **values))
    if problems:
        # One self-contained line per problem: the first line alone is still a complete message.
        raise DatasetError("\n".join(f"{path}: {p}" for p in problems))
    return replace(PRESETS[base_name], **values)


_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "batch_size": (int,),
    "output_tokens": (int,),
    "length_mode": (str,),
    "dataset": (str,),
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": (int,),
    "chat_template": (bool,),
}


def _type_problems(values: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in values.items():
        expected = _TYPES[key]
        # bool is an int in Python, but `batch_size: true` is a mistake
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join(t.__name__ for t in expected)
            problems.append(f"{key}: expected {names}, got {value!r}")
    return problems


def validate(w: Workload) -> list[str]:
    """Every problem with a workload's values, one line each (empty when it is usable)."""
    problems = []
    if w.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {w.batch_size}")
    if w.output_tokens < 1:
        problems.append(f"output_tokens must be >= 1, got {w.output_tokens}")
    if w.length_mode not in LENGTH_MODES:
        problems.append(f"length_mode must be fixed or natural, got {w.length_mode!r}")
    if not (math.isfinite(w.temperature) and w.temperature >= 0):
        problems.append(f"temperature must be >= 0, got {w.temperature}")
    if not (0 < w.top_p <= 1):
        problems.append(f"top_p must be in (0, 1], got {w.top_p}")
    if not w.dataset:
        problems.append("dataset must not be empty")
    if not w.name:
        problems.append("name must not be empty")
    return problems

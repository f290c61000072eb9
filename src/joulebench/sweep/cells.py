"""Cells of a sweep (engine x model x workload), their stable keys, and their grouping into engine starts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from joulebench.runner.config import RunConfig
from joulebench.runner.engine_env import as_env
from joulebench.sweep.plan import ENGINE_OVERRIDES, WORKLOAD_FIELDS, EngineEntry, Plan, WorkloadEntry

KEY_LENGTH = 16  # hex digits of sha256: collisions are negligible at any plausible plan size


@dataclass(frozen=True)
class Cell:
    """One resolved configuration of a plan; ``config.sweep_key`` identifies it across sweeps."""

    config: RunConfig
    engine: EngineEntry
    workload: WorkloadEntry

    @property
    def key(self) -> str:
        assert self.config.sweep_key is not None
        return self.config.sweep_key

    @property
    def group_key(self) -> str:
        return group_key(self.config, self.engine.variant)


@dataclass(frozen=True)
class Group:
    """Cells that one engine start can serve: equal in everything but the workload."""

    key: str
    cells: tuple[Cell, ...]

    @property
    def engine(self) -> EngineEntry:
        return self.cells[0].engine

    @property
    def configs(self) -> list[RunConfig]:
        return [c.config for c in self.cells]

    @property
    def num_gpus(self) -> int:
        if self.engine.num_gpus is not None:
            return self.engine.num_gpus
        first = self.cells[0].config
        return first.tensor_parallel if first.device == "cuda" else 0


# Settings added after sweeps first stored keys: left out of the key while at their default, so that a
# cell keeps the key it had before they existed and --resume still finds it.
LATER_FIELDS: dict[str, Any] = {
    "engine_env": {},
    "cpu_tdp_w": None,
    "setup_factors": {},
    "park_s": 0.0,
    "sleep_levels": [],
    "lifecycle_repeats": None,
}
# Settings that add labelled estimates beside what is measured and change no measured number: not part of
# a cell's identity (keys were stored with estimates off, the old default; --resume still finds them).
KEY_NEUTRAL = {"estimate": False}


def sweep_key(config: RunConfig, variant: str | None) -> str:
    """A hash of the resolved configuration (without its own key), the same on every machine and run."""
    return _digest(_settings(config, leave_out=("sweep_key", "label")), variant)


def group_key(config: RunConfig, variant: str | None) -> str:
    # the trial counts are per cell too: a cell that --resume continues runs only what it lacks, and still
    # shares its engine start with the rest
    per_cell = (*WORKLOAD_FIELDS, "sweep_key", "label", "setup_repeats", "repeats", "unmonitored_repeats",
                "lifecycle_repeats")  # fmt: skip
    return _digest(_settings(config, leave_out=per_cell), variant)


def _settings(config: RunConfig, leave_out: tuple[str, ...]) -> dict[str, Any]:
    return {
        k: KEY_NEUTRAL.get(k, v)
        for k, v in config.to_dict().items()
        if k not in leave_out and not (k in LATER_FIELDS and v == LATER_FIELDS[k])
    }


def _digest(data: dict[str, Any], variant: str | None) -> str:
    payload = {"config": data, "variant": variant}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def resolve_device(device: str, gpus: int) -> str:
    """``auto`` becomes ``cuda`` where GPUs are visible, else ``cpu``: a cell's key says where it ran."""
    if device != "auto":
        return device
    return "cuda" if gpus > 0 else "cpu"


def local_path(name: str, base_dir: Path) -> str:
    """A model or workload named by a path is made absolute (relative to the plan); names stay as they are."""
    looks_like_path = name.startswith(("/", "./", "../", "~")) or name.endswith((".yaml", ".yml"))
    candidate = (base_dir / Path(name).expanduser()).resolve()
    if looks_like_path or candidate.exists():
        return str(candidate)
    return name


def expand(plan: Plan, gpus: int) -> list[Cell]:
    """Every cell of ``plan``, engines outermost then models then workloads (the order they run in)."""
    cells: list[Cell] = []
    for engine in plan.engines:
        for model in plan.models:
            for i, workload in enumerate(plan.workloads):
                cells.append(_cell(plan, engine, model, workload, gpus, setup=i == 0))
    return cells


def _cell(
    plan: Plan, engine: EngineEntry, model: str, workload: WorkloadEntry, gpus: int, *, setup: bool
) -> Cell:
    # Setup energy belongs to (engine, model), not to a workload: its trials run with the first workload only.
    setup_repeats = plan.setup_repeats if engine.setup_repeats is None else engine.setup_repeats
    settings: dict[str, Any] = {
        **plan.defaults,
        "repeats": plan.repeats if engine.repeats is None else engine.repeats,
        "setup_repeats": setup_repeats if setup else 0,
        "device": resolve_device(engine.device or plan.device, gpus),
        "dtype": engine.dtype or plan.dtype,
        "engine": engine.name,
        "engine_options": dict(engine.options),
        "tensor_parallel": engine.tensor_parallel,
        "model": local_path(model, plan.base_dir),
        "workload": local_path(workload.name, plan.base_dir),
        **workload.overrides,
    }
    env = {**plan.defaults.get("engine_env", {}), **engine.env}
    if env:  # checked with the plan; as the process sees it: text
        settings["engine_env"] = as_env(env)
    if engine.monitor is not None:
        settings["monitor"] = engine.monitor
    for name in ENGINE_OVERRIDES:
        if getattr(engine, name) is not None:
            settings[name] = getattr(engine, name)
    config = RunConfig(**settings)
    keyed = replace(config, sweep_key=sweep_key(config, engine.variant), label=engine.variant)
    return Cell(config=keyed, engine=engine, workload=workload)


def group(cells: list[Cell]) -> list[Group]:
    """Cells grouped by engine start, in first-appearance order."""
    by_key: dict[str, list[Cell]] = {}
    for cell in cells:
        by_key.setdefault(cell.group_key, []).append(cell)
    return [Group(key=k, cells=tuple(v)) for k, v in by_key.items()]

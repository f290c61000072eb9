"""Checks a plan against this machine (or cluster) before anything runs: one line per problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from joulebench.errors import UsageError
from joulebench.runner.config import RunConfig
from joulebench.sweep.cells import Cell, resolve_device
from joulebench.sweep.plan import Plan


def validate(plan: Plan, cells: list[Cell], gpus_per_node: int) -> list[str]:
    """Every problem that would make a cell fail for a reason known now. ``gpus_per_node`` is what one
    cell can get: the visible GPUs here, or the largest node of a Ray cluster (tensor parallelism does not
    span nodes)."""
    problems: list[str] = []
    known = _engine_names()
    for i, engine in enumerate(plan.engines):
        where = f"engines[{i}] ({engine.label})"
        if engine.name not in known:
            problems.append(f"{where}: unknown engine '{engine.name}' (known: {', '.join(sorted(known))})")
            continue
        problems += [f"{where}: {p}" for p in _problems(_engine_installed, engine.name)]
        device = resolve_device(engine.device or plan.device, gpus_per_node)
        if device == "cpu" and not _runs_on_cpu(engine.name):
            problems.append(f"{where}: {engine.name} needs a GPU but device is cpu")
        if device == "cuda" and gpus_per_node == 0:
            problems.append(f"{where}: device is cuda but no GPU is visible")
        elif device == "cuda" and engine.tensor_parallel > gpus_per_node:
            problems.append(
                f"{where}: tensor_parallel {engine.tensor_parallel} needs {engine.tensor_parallel} GPUs "
                f"on one node, {gpus_per_node} visible"
            )
    for cell in cells:
        problems += [f"{cell.engine.label}: {p}" for p in _problems(_check_config, cell.config)]
    for model in dict.fromkeys(c.config.model for c in cells if not _served(c.config)):
        problems += [f"model '{model}': {p}" for p in _problems(_resolve_model, model)]
    shapes = {(c.config.workload, c.workload.label): c.config for c in cells}
    for (workload, label), config in shapes.items():
        problems += [f"workload '{label}': {p}" for p in _problems(_resolve_workload, workload, config)]
    return list(dict.fromkeys(problems))  # a setting shared by many cells is reported once


def _served(config: RunConfig) -> bool:
    """An OpenAI-compatible server resolves its model name itself."""
    return config.engine == "openai" and bool(config.endpoint or config.server_cmd)


def _problems(resolve: Callable[..., object], *args: Any) -> list[str]:
    """The lines of the error ``resolve`` raises for bad input (a workload file may have several)."""
    try:
        resolve(*args)
    except UsageError as exc:
        return [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return []


# Engines whose adapters cannot run on a CPU, for adapters that do not declare ``devices`` themselves.
GPU_ONLY_ENGINES = frozenset({"tensorrt-llm"})


def _engine_names() -> set[str]:
    from joulebench.engines.registry import engine_names

    return set(engine_names())


def _engine_installed(engine: str) -> object:
    from joulebench.runner.prepare import engine_class

    try:
        return engine_class(engine)
    except ImportError as exc:  # the adapter module itself is broken or missing from this install
        raise UsageError(f"the {engine} adapter cannot be imported ({exc})") from exc


def _check_config(config: RunConfig) -> None:
    from joulebench.runner.prepare import check_config

    check_config(config)


def _runs_on_cpu(engine: str) -> bool:
    from joulebench.engines.registry import get_engine_class

    try:
        devices = getattr(get_engine_class(engine), "devices", None)
    except ImportError:
        devices = None
    if devices is None:
        return engine not in GPU_ONLY_ENGINES
    return "cpu" in devices


def _resolve_model(name: str) -> object:
    from joulebench.models.presets import PRESET_NAMES
    from joulebench.models.resolve import resolve_model

    if name in PRESET_NAMES:
        return name  # resolving a preset writes its checkpoint: leave that to the run that needs it
    return resolve_model(name)


def _resolve_workload(name: str, config: RunConfig) -> object:
    from joulebench.workloads.presets import resolve_workload

    return resolve_workload(
        name,
        batch_size=config.batch_size,
        output_tokens=config.output_tokens,
        length_mode=config.length_mode,
        dataset=config.dataset,
    )

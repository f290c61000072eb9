"""Checks a plan against this machine (or cluster) before anything runs: one line per problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from joulebench.errors import MissingDependency, UsageError
from joulebench.runner.config import RunConfig
from joulebench.sweep.cells import Cell, resolve_device
from joulebench.sweep.plan import Plan


def validate(plan: Plan, cells: list[Cell], gpus_per_node: int, here: list[str] | None = None) -> list[str]:
    """Every problem that would make a cell fail for a reason known now. ``gpus_per_node`` is what one
    cell can get: the visible GPUs here, or the largest node of a Ray cluster (tensor parallelism does not
    span nodes).

    With ``here`` (a dry run), what only this machine lacks (a GPU, an engine's package, a model folder
    the plan names) goes there instead: a plan for a GPU server is planned and checked on a laptop."""
    problems: list[str] = []
    machine = problems if here is None else here
    known = _engine_names()
    for i, engine in enumerate(plan.engines):
        where = f"engines[{i}] ({engine.label})"
        if engine.name not in known:
            problems.append(f"{where}: unknown engine '{engine.name}' (known: {', '.join(sorted(known))})")
            continue
        try:
            _engine_installed(engine.name)
        except MissingDependency as exc:  # this machine lacks the engine's package
            machine.append(f"{where}: {exc}")
        except UsageError as exc:  # the adapter itself cannot be imported
            problems.append(f"{where}: {exc}")
        asked = engine.device or plan.device
        device = resolve_device(asked, gpus_per_node)
        if device == "cpu" and not _runs_on_cpu(engine.name):
            # "auto" became cpu for want of a GPU here; "cpu" is the plan's own mistake
            (machine if asked == "auto" else problems).append(
                f"{where}: {engine.name} needs a GPU but device is cpu"
            )
        if device == "cuda" and gpus_per_node == 0:
            machine.append(f"{where}: device is cuda but no GPU is visible")
        elif device == "cuda" and engine.tensor_parallel > gpus_per_node:
            machine.append(
                f"{where}: tensor_parallel {engine.tensor_parallel} needs {engine.tensor_parallel} GPUs "
                f"on one node, {gpus_per_node} visible"
            )
        if engine.num_gpus is not None and engine.num_gpus > gpus_per_node:
            machine.append(f"{where}: num_gpus {engine.num_gpus} on one node, {gpus_per_node} visible")
        elif engine.num_gpus is not None and device == "cuda" and engine.num_gpus < engine.tensor_parallel:
            problems.append(f"{where}: num_gpus {engine.num_gpus} is fewer than its tensor_parallel")
    for cell in cells:
        problems += [f"{cell.engine.label}: {p}" for p in _problems(_check_config, cell.config)]
    fits = {(c.config.model, c.config.device, c.config.tensor_parallel): c.config for c in cells}
    for config in fits.values():  # the weights against this machine's memory: a machine's problem
        machine += [p for p in _problems(_check_fits, config) if p not in machine]
    for model in dict.fromkeys(c.config.model for c in cells if not _served(c.config)):
        found = [f"model '{model}': {p}" for p in _problems(_resolve_model, model)]
        if found and Path(model).is_absolute() and not Path(model).exists():
            # a folder the plan names that is on another machine (the GPU server), not this one
            machine.append(f"model folder {model} does not exist here")
        else:
            problems += found
    shapes = {(c.config.workload, c.workload.label): c.config for c in cells}
    for (workload, label), config in shapes.items():
        problems += [f"workload '{label}': {p}" for p in _problems(_resolve_workload, workload, config)]
    return list(dict.fromkeys(problems))  # a setting shared by many cells is reported once


def _served(config: RunConfig) -> bool:
    """An OpenAI-compatible server resolves its model name itself."""
    from joulebench.runner.prepare import served

    return served(config)


def _problems(resolve: Callable[..., object], *args: Any) -> list[str]:
    """The lines of the error ``resolve`` raises for bad input (a workload file may have several)."""
    try:
        resolve(*args)
    except UsageError as exc:
        return [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return []


def _engine_names() -> set[str]:
    from joulebench.engines.registry import engine_names

    return set(engine_names())


def not_installed(engine: str) -> str | None:
    """Why ``engine`` cannot run here for want of its package (with the install line), else ``None``."""
    try:
        _engine_installed(engine)
    except MissingDependency as exc:
        return str(exc)
    except UsageError:
        return None  # an unknown engine: validation says so
    return None


def _engine_installed(engine: str) -> object:
    from joulebench.runner.prepare import engine_class

    try:
        return engine_class(engine)
    except ImportError as exc:  # the adapter module itself is broken or missing from this install
        raise UsageError(f"the {engine} adapter cannot be imported ({exc})") from exc


def _check_config(config: RunConfig) -> None:
    from joulebench.runner.prepare import check_config

    check_config(config)


def _check_fits(config: RunConfig) -> None:
    from joulebench.runner.fits import check_fits

    check_fits(config, config.device)


def _runs_on_cpu(engine: str) -> bool:
    from joulebench.engines.registry import get_engine_class

    return "cpu" in get_engine_class(engine).devices


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

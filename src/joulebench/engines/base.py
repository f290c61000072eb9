"""The engine seam: one adapter per inference engine, whose steps are the paper's lifecycle stages.

    E_total = E_setup + E_TG = E_IE + E_LM + T * E_PT

An adapter never measures energy itself. It reports *when* each stage begins and ends through the
:class:`~joulebench.measurement.markers.StageMarks` it is given, taking those instants from the engine's
own events (its log records, callbacks or return points), and the measuring process turns the marks into
energy windows. Stage names are the constants below.

A stage may come as several spans of the same name: vLLM initialises its engine both before and after it
reads the weights, so its ``engine_init`` is two spans around ``model_load``. A stage's duration and energy
are the sums over its spans. Finer sub-stages (``compile``, ``cuda_graphs``, ...) overlap the stage they
belong to and are never added to it.

Each adapter module imports its engine inside its methods, so that ``import joulebench`` stays cheap and
a missing engine gives :class:`~joulebench.errors.MissingDependency` with its install hint.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from joulebench.measurement.markers import StageMarks
    from joulebench.workloads.spec import Request, Response, SamplingSpec

# Stage names used in marks and in the results database.
STAGE_IMPORT = "import"  # importing the engine's Python packages
STAGE_ENGINE_INIT = "engine_init"  # E_IE: runtime/device/process initialisation, before weights are read
STAGE_MODEL_LOAD = "model_load"  # E_LM: reading weights to the device, until the engine can serve
STAGE_FIRST_TOKEN = "first_token"  # the first request, until its first token
STAGE_SETUP = "setup"  # the whole setup trial: process start to first token
STAGE_WARMUP = "warmup"  # the batch before an engine start's first repeat of a shape, outside the statistics
STAGE_GENERATE = "generate"  # one token-generation repeat (a whole batch)
STAGE_STEADY = "steady"  # the steady-state part of a repeat (ramp-up and ramp-down excluded)
STAGE_PREFILL = "prefill"  # the spans of a repeat when some request is in prefill (runner/phases.py)
STAGE_DECODE = "decode"  # the spans of a repeat when every request in flight is decoding
#: setup stages that do not depend on the model, as the paper counts them (one figure per engine)
MODEL_FREE_STAGES = (STAGE_IMPORT, STAGE_ENGINE_INIT)
STAGE_PARK = "park"  # a loaded engine serving nothing, for a set time (docs/lifecycle.md)
STAGE_SLEEP_ENTER = "sleep_enter"  # the call that puts a loaded engine to sleep
STAGE_SLEEP = "sleep"  # an engine asleep, for a set time
STAGE_WAKE = "wake"  # the call that wakes it, until it can serve again


#: weight dtypes every engine takes ("auto": the checkpoint's own)
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True)
class EngineConfig:
    """Everything an adapter needs to start an engine. ``options`` holds engine-specific settings."""

    model: str  # a local folder or a hub ID
    device: str = "cuda"  # "cuda" or "cpu"
    dtype: str = "auto"  # one of DTYPES
    tensor_parallel: int = 1
    max_batch_size: int | None = None
    max_model_len: int | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # set in the engine's process when it is spawned


@dataclass(frozen=True)
class EngineInfo:
    """What ran, for the results database: versions, and the code path taken (e.g. kernel injection)."""

    engine: str
    version: str
    details: dict[str, Any] = field(default_factory=dict)


# torch.compile's (Inductor's) and Triton's kernel caches, shared by every engine that compiles through torch
TORCH_COMPILE_CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


def cache_dir(variable: str, default: str, environ: Mapping[str, str] | None = None) -> Path:
    """A cache folder as engines find it in ``environ`` (default: this process's environment):
    ``$variable``, else ``default`` under ``$XDG_CACHE_HOME``."""
    env = os.environ if environ is None else environ
    xdg = Path(env.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(env.get(variable, xdg / default)).expanduser()


class Engine(ABC):
    """One inference engine. Lifecycle: ``setup`` once, ``generate`` many times, ``close`` once."""

    name: ClassVar[str]
    #: the pip extra that installs this engine, for the install hint
    extra: ClassVar[str]
    #: the module whose presence says the engine is installed (and whose distribution gives its version)
    package: ClassVar[str]
    #: the devices it runs on
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: a client of a server (``--endpoint``, ``--server-cmd``, ``--max-concurrency``, ``--request-rate``
    #: apply): the server, not this process, resolves and loads the model
    serves_over_http: ClassVar[bool] = False
    #: a sweep's first guess before any history: setup until the first token, and generation on one GPU
    typical_setup_s: ClassVar[float] = 30.0
    typical_gpu_tokens_per_s: ClassVar[float] = 1_000.0
    #: environment variables naming every folder where the engine, or torch under it, keeps compiled code
    #: between processes: pointed at a folder of their own when cells share a host (one per GPU set)
    compile_cache_vars: ClassVar[tuple[str, ...]] = TORCH_COMPILE_CACHE_VARS
    #: the setup factors of its own (`run --setup-factors`): factor -> level -> the engine options that
    #: level sets; the page cache and the compile caches are every engine's (runner/setup_factors.py)
    setup_factor_options: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {}
    #: its setup stages that do not depend on the model, pooled over models in the report
    model_free_stages: ClassVar[tuple[str, ...]] = MODEL_FREE_STAGES
    #: setup stages that hold what other engines report as a stage apart, and what: the report says so
    #: beside the stage rather than compare it with the others' as if alike
    stage_holds: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def compile_cache_dirs(cls, environ: Mapping[str, str] | None = None) -> list[Path]:
        """Folders where the engine, given the environment ``environ``, keeps compiled kernels and graphs
        between processes (none here): whether they hold anything tells a cold setup from a warm one."""
        return []

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        self.config = config
        self.marks = marks

    @classmethod  # noqa: B027 - an optional hook
    def check_config(cls, config: EngineConfig) -> None:
        """Refuse, with :class:`~joulebench.errors.UsageError`, what can be known wrong without the engine
        installed or started (unknown options, values out of range): checked before a run is created,
        not in the worker after it. Adapters whose engine validates its own options leave it empty."""

    @classmethod
    def ranks(cls, config: EngineConfig) -> int:
        """Processes, one per GPU, that the runner must start for this engine, as ``torchrun`` would (1: one
        process, which may start its own workers, as vLLM does)."""
        return 1

    @classmethod
    def rank_leftovers(cls, config: EngineConfig, addr: str, port: int) -> list[str]:
        """Files that this engine's ranks (rendezvous at ``addr:port``) leave behind when they exit, which
        the runner removes once they have."""
        return []

    @abstractmethod
    def setup(self) -> EngineInfo:
        """Import, initialise the engine and load the model, marking ``import``, ``engine_init`` and
        ``model_load`` from the engine's own events. Returns when the engine can serve a request."""

    @abstractmethod
    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        """Run one batch to completion and return one :class:`Response` per request, in order, with
        token counts taken from the engine's token IDs."""

    def first_token(self, request: Request, sampling: SamplingSpec) -> Response:
        """The setup trial's last step: one request until its first token (default: a 1-token request)."""
        from dataclasses import replace

        one = replace(sampling, max_output_tokens=1, length_mode="fixed")
        return self.generate([request], one)[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (processes, GPU memory)."""

    @classmethod
    def sleep_levels(cls, config: EngineConfig) -> tuple[int, ...]:
        """The sleep levels this engine has with this configuration (none: it has no sleep mode)."""
        return ()

    @classmethod
    def no_sleep_reason(cls, config: EngineConfig) -> str:
        """Why :meth:`sleep_levels` is empty, for the one line that refuses ``--sleep-levels``."""
        return f"{cls.name} has no sleep mode"

    @classmethod
    def sleep_options(cls, levels: Sequence[int]) -> dict[str, Any]:
        """Engine options an engine must be started with to be put to sleep at ``levels`` later (a
        :class:`UsageError` where it cannot be started for all of them at once)."""
        return {}

    def sleep(self, level: int) -> None:
        """Release what ``level`` releases, keeping the process; returns once done."""
        from joulebench.errors import EngineError

        raise EngineError(self.no_sleep_reason(self.config))

    def wake_up(self, level: int) -> None:
        """Undo :meth:`sleep` of ``level``; returns once the engine can serve again."""
        from joulebench.errors import EngineError

        raise EngineError(self.no_sleep_reason(self.config))


def check_options(options: dict[str, Any], known: Sequence[str], engine: str) -> None:
    """Refuse engine options an adapter does not know (a typo would otherwise be silently ignored)."""
    from joulebench.errors import UsageError

    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"unknown {engine} option(s) {', '.join(unknown)}; known: {', '.join(known)}")


def first_line(exc: BaseException) -> str:
    """An engine's exception as one line, for an error message."""
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__

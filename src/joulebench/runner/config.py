"""The resolved configuration of one benchmark run: what `joulebench run` and each sweep cell execute."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from joulebench.workloads.spec import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, LengthMode


@dataclass(frozen=True)
class RunConfig:
    engine: str = "transformers"
    model: str = "smollm2-135m"  # a preset name, a local folder or a hub ID
    workload: str = "smoke"  # a preset name or a YAML file
    batch_size: int | None = None  # None: the preset's
    output_tokens: int | None = None  # None: the preset's
    length_mode: LengthMode | None = None  # None: the preset's
    dataset: str | None = None  # None: the preset's (bundled Alpaca sample by default)
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    repeats: int = 3  # token-generation repeats in one warm engine
    # Extra repeats with the sampler paused, alternating with the measured ones in the same warm engine:
    # throughput with and without monitoring, the monitor's own cost, measured inside the run.
    unmonitored_repeats: int = 0
    setup_repeats: int = 1  # setup trials, each in a fresh process; 0 skips them
    warmup: bool = True  # one warm-up batch of the measured shape before timing
    # Output tokens of that warm-up batch; None: as many as measured. A short warm-up (same prompts and batch
    # size) saves minutes on slow eager engines; engines that compile per length want the full one.
    warmup_tokens: int | None = None
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"
    tensor_parallel: int = 1
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Environment variables of the engine's processes (e.g. PYTORCH_CUDA_ALLOC_CONF): part of the
    # configuration, stored with the run, so never a secret.
    engine_env: dict[str, str] = field(default_factory=dict)
    interval_ms: float = 100.0
    gpu_power_interval_ms: float = 20.0
    # Estimate CPU/DRAM where no source measures them, labelled estimated and kept out of measured totals:
    # on by default, so that a machine without readable sensors still shows joules, never silently.
    estimate: bool = True
    cpu_tdp_w: float | None = None  # the estimate's CPU TDP per socket; None: from the model's table
    monitor: bool = True  # False: run without any sampling (to measure the monitor's own overhead)
    idle_s: float = 5.0  # idle baseline before the trials; 0 skips it
    trial_timeout_s: float = 1800.0
    seed: int = 0
    sweep_key: str | None = None
    label: str | None = None  # tells runs of one engine apart in reports (a sweep entry's variant)
    # OpenAI-compatible servers (engine "openai"): a running server, or a command that starts one.
    endpoint: str | None = None
    server_cmd: str | None = None
    max_concurrency: int | None = None  # requests in flight at once; None: the whole batch
    request_rate: float | None = None  # requests per second (Poisson arrivals); None: all at once
    drop_caches: bool = False  # drop the page cache before each setup trial (root only): cold setups
    # setup factors crossed by the setup trials, factor -> levels (runner/setup_factors.py); each
    # combination gets setup_repeats trials
    setup_factors: dict[str, list[str]] = field(default_factory=dict)
    # after the repeats, in the same warm engine: `park_s` seconds loaded and serving nothing, then for
    # each sleep level a sleep call, `park_s` seconds asleep and a wake call; `repeats` times over
    # (docs/lifecycle.md)
    park_s: float = 0.0
    sleep_levels: list[int] = field(default_factory=list)
    # how many of those park-and-sleep cycles; None: as many as `repeats`. A sweep's --resume sets the
    # number its cell still lacks, which may differ from the repeats it lacks.
    lifecycle_repeats: int | None = None

    @property
    def setup_trials(self) -> int:
        """Setup trials the run makes: ``setup_repeats`` for each combination of the setup factors' levels."""
        combinations = 1
        for levels in self.setup_factors.values():
            combinations *= len(levels)
        return self.setup_repeats * combinations

    @property
    def lifecycle_cycles(self) -> int:
        """Park-and-sleep cycles the run makes after its repeats."""
        if not self.park_s > 0:
            return 0
        return self.repeats if self.lifecycle_repeats is None else self.lifecycle_repeats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Token-generation trials in one warm engine.

A :class:`GenerationSession` is one worker process that sets the engine up once and then runs one
batch per ``generate`` command, so one engine start can serve several workloads in sequence (the
sweep's ``execute_many``). Policy on a crash, hang or OOM: the failed repeat is recorded ``failed``
with the worker's last stderr lines, the worker is replaced by a fresh one (warmed up again) for the
remaining repeats; if the replacement cannot start, the remaining repeats are recorded ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.engines.base import (
    STAGE_DECODE,
    STAGE_GENERATE,
    STAGE_PREFILL,
    STAGE_STEADY,
    STAGE_WARMUP,
    EngineConfig,
)
from joulebench.runner import protocol
from joulebench.runner.metrics import phase_metrics, repeat_metrics, request_energy_metrics
from joulebench.runner.monitoring import trace_bytes
from joulebench.runner.phases import phase_spans, request_energies
from joulebench.runner.prepare import Prepared
from joulebench.runner.process import WorkerProcess
from joulebench.runner.ranks import WorkerGroup, worker_for
from joulebench.runner.setup_trial import worker_spec
from joulebench.runner.steady import steady_window
from joulebench.store.rows import RequestRow, StageEnergyRow, TrialRow, request_row, stage_rows
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.runner.monitoring import RunMonitor


@dataclass(frozen=True)
class Batch:
    begin_s: float
    end_s: float
    responses: tuple[Response, ...]


def engine_key(engine: str, c: EngineConfig) -> tuple[Any, ...]:
    """What two runs must share to use one engine start (batch size and length limits may differ)."""
    options, env = repr(sorted(c.options.items())), repr(sorted(c.env.items()))
    return (engine, c.model, c.device, c.dtype, c.tensor_parallel, c.seed, options, env)


class GenerationSession:
    """A warm engine in a worker process. ``start()`` it, ``generate()`` batches, ``close()`` it."""

    def __init__(
        self, engine: str, engine_config: EngineConfig, *, log_dir: Path, env: dict[str, str]
    ) -> None:
        self.engine = engine
        self.engine_config = engine_config
        self.log_dir = log_dir
        self.env = env
        self.worker: WorkerProcess | WorkerGroup | None = None
        self.engine_info: dict[str, Any] | None = None
        self.starts = 0
        self.warmed: set[tuple[int, int, str]] = set()  # batch shapes already warmed up in this worker

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive

    def serves(self, engine: str, config: EngineConfig) -> bool:
        """Whether a run with this engine configuration can use this session's engine."""
        return engine_key(engine, config) == engine_key(self.engine, self.engine_config)

    def start(self, timeout_s: float) -> None:
        self.close()
        self.starts += 1
        self.warmed.clear()
        self.worker = worker_for(
            self.engine,
            self.engine_config,
            worker_spec(self.engine, self.engine_config),
            log_dir=self.log_dir,
            name=f"generate-{self.starts}",
            env=self.env,
        )
        self.worker.start()
        ready = self.worker.wait_for("ready", timeout_s)
        self.engine_info = ready.get("engine_info")

    def generate(
        self, tag: str, requests: tuple[Request, ...], sampling: SamplingSpec, timeout_s: float
    ) -> Batch:
        assert self.worker is not None
        self.worker.send(
            {
                "cmd": "generate",
                "tag": tag,
                "requests": [protocol.request_to_dict(r) for r in requests],
                "sampling": protocol.sampling_to_dict(sampling),
            }
        )
        msg = self.worker.wait_for("generated", timeout_s)
        responses = tuple(protocol.response_from_dict(d) for d in msg["responses"])
        return Batch(float(msg["begin_s"]), float(msg["end_s"]), responses)

    def transition(self, cmd: str, level: int, timeout_s: float) -> tuple[float, float]:
        """``sleep`` or ``wake`` the engine at ``level``; the call's begin and end."""
        assert self.worker is not None
        self.worker.send({"cmd": cmd, "level": level})
        msg = self.worker.wait_for(f"{cmd}-done", timeout_s)
        return float(msg["begin_s"]), float(msg["end_s"])

    def is_warm(
        self, requests: tuple[Request, ...], sampling: SamplingSpec, max_tokens: int | None = None
    ) -> bool:
        """Whether this worker has run the warm-up of this shape already."""
        return _warm_shape(requests, _warm_sampling(sampling, max_tokens)) in self.warmed

    def warm_up(
        self,
        requests: tuple[Request, ...],
        sampling: SamplingSpec,
        timeout_s: float,
        max_tokens: int | None = None,
    ) -> Batch | None:
        """One unmeasured batch of the measured shape (once per shape per worker), its output cut to
        ``max_tokens`` where given; None when this shape was already warmed up."""
        if self.is_warm(requests, sampling, max_tokens):
            return None
        sampling = _warm_sampling(sampling, max_tokens)
        batch = self.generate("warmup", requests, sampling, timeout_s)
        self.warmed.add(_warm_shape(requests, sampling))
        return batch

    def close(self) -> None:
        """Let the worker release its engine and exit (killed if it does not)."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    def __enter__(self) -> GenerationSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.kill()


def _warm_sampling(sampling: SamplingSpec, max_tokens: int | None) -> SamplingSpec:
    if max_tokens is not None and max_tokens < sampling.max_output_tokens:
        return replace(sampling, max_output_tokens=max_tokens)
    return sampling


def _warm_shape(requests: tuple[Request, ...], sampling: SamplingSpec) -> tuple[int, int, str]:
    return (len(requests), sampling.max_output_tokens, sampling.length_mode)


def measure_warmup(
    index: int,
    batch: Batch,
    monitor: RunMonitor,
    started_unix: float,
    prompt_tokens: int | None,
    extra: dict[str, Any],
) -> tuple[TrialRow, list[StageEnergyRow], list[RequestRow], bytes | None]:
    """The batch that warmed the engine up before repeat ``index``, as a trial of its own (kind
    ``warmup``): what the first batch after an engine start costs beyond a warm one, stored the moment it
    ends, so that a run cut off during the long first repeat keeps it. It stays out of every statistic."""
    tokens = sum(r.output_tokens for r in batch.responses)
    duration_s = batch.end_s - batch.begin_s
    details = {
        "begin_s": batch.begin_s,
        "end_s": batch.end_s,
        "warmup_duration_s": duration_s,
        "warmup_output_tokens": tokens,
        **extra,
    }
    trial = TrialRow(
        kind="warmup",
        repeat_index=index,
        status="ok",
        started_unix_s=started_unix,
        duration_s=duration_s,
        n_requests=len(batch.responses),
        prompt_tokens=prompt_tokens,
        output_tokens=tokens,
        details=details,
    )
    stages = stage_rows(monitor.window(STAGE_WARMUP, batch.begin_s, batch.end_s))
    return trial, stages, [], trace_bytes(monitor, batch.begin_s, batch.end_s)


def measure_batch(
    p: Prepared,
    index: int,
    batch: Batch,
    monitor: RunMonitor,
    started_unix: float,
    extra: dict[str, Any],
) -> tuple[TrialRow, list[StageEnergyRow], list[RequestRow], bytes | None]:
    """Turn one finished batch into its trial, windows (whole batch and steady state) and request rows."""
    window = monitor.window(STAGE_GENERATE, batch.begin_s, batch.end_s)
    steady = steady_window(batch.responses, p.config.max_concurrency)
    steady_stage = None
    stages = stage_rows(window)
    if steady.available:
        assert steady.start_s is not None and steady.end_s is not None
        steady_stage = monitor.window(STAGE_STEADY, steady.start_s, steady.end_s)
        flags = ("tokens-interpolated",) if steady.tokens_interpolated else ()
        stages += stage_rows(steady_stage, flags=flags)
    # prefill and decode: each phase's spans, a window each (their energies add up; docs/phases.md)
    phases = phase_spans(batch.responses, batch.begin_s, batch.end_s)
    phase_windows = {
        name: [monitor.window(name, s, e) for s, e in spans]
        for name, spans in ((STAGE_PREFILL, phases.prefill), (STAGE_DECODE, phases.decode))
    }
    for pieces in phase_windows.values():
        for piece in pieces:
            stages += stage_rows(piece)
    metrics = repeat_metrics(window, batch.responses, steady, steady_stage)
    metrics.update(phase_metrics(phases, phase_windows, batch.responses))
    per_request = None
    if phases.available:
        per_request = request_energies(monitor.window, batch.responses, batch.begin_s, batch.end_s, window)
    details: dict[str, Any] = {"metrics": metrics, "begin_s": batch.begin_s, "end_s": batch.end_s, **extra}
    shares: list[float | None] = [None] * len(batch.responses)
    estimated = False
    if per_request is not None:
        shares, estimated = per_request  # each request's share of the repeat's total (docs/phases.md)
        metrics.update(request_energy_metrics(shares))
    if p.sampling.length_mode == "fixed":
        short = [
            r.index
            for r in batch.responses
            if r.error is None and r.output_tokens != p.sampling.max_output_tokens
        ]
        if short:
            details["fixed_length_mismatch"] = short
    errors = [r.error for r in batch.responses if r.error]
    trial = TrialRow(
        kind="generation",
        repeat_index=index,
        status="ok",
        started_unix_s=started_unix,
        duration_s=batch.end_s - batch.begin_s,
        n_requests=len(batch.responses),
        prompt_tokens=p.prompt_tokens,
        output_tokens=metrics["output_tokens"],
        error=f"{len(errors)} request(s) failed: {errors[0]}" if errors else None,
        details=details,
    )
    requests = [request_row(r, s, estimated) for r, s in zip(batch.responses, shares, strict=True)]
    return trial, stages, requests, trace_bytes(monitor, batch.begin_s, batch.end_s)


def failed_trial(
    index: int, error: str, started_unix: float, duration_s: float | None, **details: Any
) -> TrialRow:
    return TrialRow(
        kind="generation",
        repeat_index=index,
        status="failed",
        started_unix_s=started_unix,
        duration_s=duration_s,
        error=error,
        details=details,
    )

"""The library entry points of `joulebench run`: :func:`execute` (one run) and :func:`execute_many`
(several workloads in one engine start, for sweeps).

A run, in the manager process: resolve and check everything (bad input -> UsageError before anything
starts), create the run row, start one monitor for the whole run, take the idle baseline, run the setup
trials (each a fresh worker) and the generation repeats (one warm worker), writing every finished trial
at once in its own transaction. Ctrl-C kills the workers and marks the run ``interrupted``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.engines.base import STAGE_PARK, STAGE_SLEEP, STAGE_SLEEP_ENTER, STAGE_WAKE
from joulebench.errors import OUT_OF_MEMORY_HINT, UsageError
from joulebench.measurement.occupancy import idle_busy_message, with_held_memory
from joulebench.runner.config import RunConfig
from joulebench.runner.deadline import GENERATE, PARK, SETUP, Budget, Deadline, opening_s
from joulebench.runner.generation import (
    GenerationSession,
    engine_key,
    failed_trial,
    measure_batch,
    measure_warmup,
)
from joulebench.runner.monitoring import trace_bytes
from joulebench.runner.prepare import Prepared, prepare
from joulebench.runner.process import WorkerFailed
from joulebench.store.db import ResultsDB
from joulebench.store.rows import StageEnergyRow, TrialRow, sleep_kind, stage_rows

if TYPE_CHECKING:
    from joulebench.runner.monitoring import RunMonitor

#: receives ``{"event": ..., ...}`` dicts: run_start (run_id, monitor, prepared), phase (phase, index,
#: total), trial (kind, index, status, metrics, error), idle_busy (message), time_limit (message),
#: run_end (status)
Progress = Callable[[dict[str, Any]], None]
STAGE_IDLE = "idle"
# Repeats in a row that ran out of device memory before the rest are given up: the first may be a
# long-lived worker's fragmented cache, the second had a fresh engine.
OUT_OF_MEMORY_STRIKES = 2


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    status: str  # ok | partial | failed | interrupted
    summary: dict[str, Any]


def _notify(progress: Progress | None, event: str, **info: Any) -> None:
    if progress is not None:
        progress({"event": event, **info})


def _run_status(trials: list[dict[str, Any]]) -> str:
    gen = [t for t in trials if t["kind"] == "generation"]
    if not trials or (gen and not any(t["status"] == "ok" for t in gen)):
        return "failed"
    return "ok" if all(t["status"] == "ok" for t in trials) else "partial"


#: The folder where an engine worker writes the logs of what it starts (an OpenAI-compatible server's).
LOG_DIR_ENV = "JOULEBENCH_LOG_DIR"


class _Run:
    def __init__(
        self,
        p: Prepared,
        db: ResultsDB,
        progress: Progress | None,
        tmp: Path,
        log_dir: Path,
        budget: Budget | None = None,
    ) -> None:
        self.p = p
        self.budget = budget
        self.config = p.config
        self.db = db
        self.progress = progress
        self.log_dir = log_dir  # the workers' logs
        self.stage_file = tmp / "stages"
        self.stage_file.touch()
        self.env = {"JOULEBENCH_STAGE_FILE": str(self.stage_file), LOG_DIR_ENV: str(log_dir)}
        from joulebench.runner.monitoring import NullMonitor

        self.monitor: RunMonitor = NullMonitor("not started")
        self.run_id = 0
        self.statuses: list[dict[str, Any]] = []  # trial outcomes, for the run status

    def create(self) -> int:
        from joulebench.runner.environment import collect

        p, w = self.p, self.p.workload
        self.run_id = self.db.create_run(
            engine=p.engine,
            model=p.config.model,
            model_label=p.model_label,
            workload=w.name,
            batch_size=w.batch_size,
            output_tokens=w.output_tokens,
            length_mode=w.length_mode,
            device=p.device,
            tensor_parallel=self.config.tensor_parallel,
            sweep_key=self.config.sweep_key,
            config={**self.config.to_dict(), "resolved": self._resolved()},
            environment=collect(p.engine, p.engine_config.env),
            engine_version=None,
        )
        return self.run_id

    def _resolved(self) -> dict[str, Any]:
        from dataclasses import asdict

        from joulebench.roofline.shape import read_shape
        from joulebench.workloads.stats import prompt_length_stats

        shape = read_shape(self.p.model_path, self.p.config.dtype)
        return {
            "workload": asdict(self.p.workload),
            "model_path": self.p.model_path,
            "model_source": self.p.model_source,
            "engine_config": asdict(self.p.engine_config),
            # what every decode step must move and compute: the floor of docs/roofline.md
            "model_shape": shape.to_dict() if shape is not None else None,
            "prompt_lengths": prompt_length_stats(self.p.requests)
            if self.p.prompt_tokens is not None
            else None,
            "requests": [
                {"index": r.index, "source_id": r.source_id, "prompt_tokens": r.prompt_tokens}
                for r in self.p.requests
            ],
        }

    def _record(self, trial: Any, stages: Any = (), requests: Any = (), trace: bytes | None = None) -> None:
        self.db.add_trial(self.run_id, trial, stages, requests, trace)
        self.statuses.append({"kind": trial.kind, "status": trial.status})
        if self.budget is not None:
            kind = _budget_kind(trial)
            if kind is not None:
                self.budget.saw(kind, trial.duration_s)
        _notify(
            self.progress,
            "trial",
            kind=trial.kind,
            index=trial.repeat_index,
            status=trial.status,
            duration_s=trial.duration_s,
            metrics=trial.details.get("metrics"),
            error=trial.error,
        )

    def start_monitor(self) -> None:
        from joulebench.runner.environment import collect
        from joulebench.runner.monitoring import energy_sources_note, start_monitor, statuses_dicts

        self.monitor = start_monitor(self.config, self.stage_file)
        env = collect(self.p.engine, self.p.engine_config.env)
        env.update(
            log_dir=str(self.log_dir),
            energy_sources=statuses_dicts(self.monitor),
            energy_note=energy_sources_note(self.monitor),
            devices_start=_device_info(self.monitor, "start"),
        )
        self.environment = env
        self.db.update_run(self.run_id, environment=env)
        _notify(self.progress, "run_start", run_id=self.run_id, monitor=self.monitor, prepared=self.p)

    def idle(self) -> None:
        if self.config.idle_s <= 0 or self.environment.get("energy_note"):
            return  # nothing to take a baseline of
        _notify(self.progress, "phase", phase="idle", index=0, total=1)
        started = time.time()
        t0 = time.monotonic()
        powers = self.monitor.measure_idle(self.config.idle_s)
        t1 = time.monotonic()
        details: dict[str, Any] = {
            "idle_power_w": {
                f"{c.value if hasattr(c, 'value') else c}:{d}": w for (c, d), w in powers.items()
            }
        }
        busiest = dict(self.monitor.idle_utilization_pct)
        if busiest:
            details["idle_utilization_pct"] = busiest
        busy = idle_busy_message(busiest)
        if busy:
            details["idle_busy"] = busy
            _notify(self.progress, "idle_busy", message=busy)
        trial = TrialRow("idle", 0, "ok", started, duration_s=t1 - t0, details=details)
        self._record(
            trial, stage_rows(self.monitor.window(STAGE_IDLE, t0, t1)), (), trace_bytes(self.monitor, t0, t1)
        )

    def setup_trials(self) -> None:
        """``setup_repeats`` trials for each combination of the setup factors' levels (one combination of
        none without ``--setup-factors``)."""
        from joulebench.runner.setup_factors import compile_caches, grid

        combos = grid(self.config.setup_factors)
        n = self.config.setup_trials
        with compile_caches(self.p.engine, self.log_dir / "compile-caches") as caches:
            for k in range(n):
                if not self._allows(f"setup trial {k + 1} of {n}", self._expect_s(SETUP)):
                    return
                combo = combos[k // self.config.setup_repeats]
                _notify(self.progress, "phase", phase="setup", index=k, total=n)
                self._setup_trial(k, combo, caches)

    def _setup_trial(self, k: int, combo: dict[str, str], caches: Any) -> None:
        from joulebench.runner.setup_factors import COMPILE_CACHE, PAGE_CACHE, engine_options
        from joulebench.runner.setup_trial import run_setup_trial

        p = self.p
        factors: dict[str, Any] = dict(combo)
        if combo:
            env = dict(p.engine_config.env)
            if COMPILE_CACHE in combo:
                folders, empty = caches.env(combo[COMPILE_CACHE])
                env.update(folders)
                if empty:
                    factors["compile_cache_empty"] = True  # no cold trial had filled one yet
            options = {**p.engine_config.options, **engine_options(p.engine, combo)}
            p = replace(p, engine_config=replace(p.engine_config, options=options, env=env))
        trial, stages, trace = run_setup_trial(
            p, k, self.monitor, log_dir=self.log_dir, env=self.env,
            page_cache=combo.get(PAGE_CACHE), factors=factors or None,
        )  # fmt: skip
        self._record(trial, stages, (), trace)
        if trial.details.get("usage_error"):
            raise UsageError(trial.details["usage_error"])
        version = (trial.details.get("engine_info") or {}).get("version")
        if version:
            self.db.update_run(self.run_id, engine_version=version)

    def generation_trials(self, session: GenerationSession) -> None:
        monitored = repeat_plan(self.config.repeats, self.config.unmonitored_repeats)
        if session.alive and session.engine_info and session.engine_info.get("version"):
            # a session shared across runs (execute_many) started before this run existed
            self.db.update_run(self.run_id, engine_version=session.engine_info["version"])
        if self._repeats(session, monitored) >= OUT_OF_MEMORY_STRIKES:
            # the runner's verdict, stored with the run: a sweep reads it rather than judging again
            self.environment["out_of_memory"] = True
            self.db.update_run(self.run_id, environment=self.environment)

    def lifecycle_trials(self, session: GenerationSession) -> None:
        """The warm engine parked (loaded, serving nothing) for ``park_s`` seconds, then for each sleep
        level: put to sleep, held asleep as long, woken; ``lifecycle_cycles`` times over. Each a trial of
        its own (kind ``park`` or ``sleep``) with its windows; a failure is recorded and ends the series."""
        levels = self.config.sleep_levels
        cycles = [None, *levels]
        repeats = self.config.lifecycle_cycles
        for k in range(repeats * len(cycles)):
            if not session.alive:
                return  # the repeats lost the engine: nothing warm to park
            level, index = cycles[k % len(cycles)], k // len(cycles)
            what = "parking" if level is None else f"sleep level {level}"
            expect_s = 0.0 if self.budget is None else self.budget.hold_expect_s(level, self.config.park_s)
            if not self._allows(f"{what} {index + 1} of {repeats}", expect_s):
                return
            if level is None:
                _notify(self.progress, "phase", phase="park", index=index, total=repeats)
            else:  # numbered across levels; the level is in its details
                index = index * len(levels) + levels.index(level)
                _notify(self.progress, "phase", phase="sleep", index=index, total=repeats * len(levels))
            trial, stages, trace = self._lifecycle_trial(session, index, level)
            self._record(trial, stages, (), trace)
            if trial.status != "ok":
                session.kill()
                return

    def _lifecycle_trial(
        self, session: GenerationSession, index: int, level: int | None
    ) -> tuple[TrialRow, list[StageEnergyRow], bytes | None]:
        hold_s, timeout = self.config.park_s, self.config.trial_timeout_s
        started = time.time()
        begin = time.monotonic()
        windows: list[tuple[str, float, float]] = []
        try:
            if level is None:
                time.sleep(hold_s)
                windows.append((STAGE_PARK, begin, time.monotonic()))
            else:
                windows.append((STAGE_SLEEP_ENTER, *session.transition("sleep", level, timeout)))
                asleep = time.monotonic()
                time.sleep(hold_s)
                windows.append((STAGE_SLEEP, asleep, time.monotonic()))
                windows.append((STAGE_WAKE, *session.transition("wake", level, timeout)))
        except WorkerFailed as exc:
            end = time.monotonic()
            trial = TrialRow("sleep", index, "failed", started, duration_s=end - begin, error=str(exc),
                             details={"level": level, "timed_out": exc.timed_out})  # fmt: skip
            failed = stage_rows(self.monitor.window(STAGE_SLEEP_ENTER, begin, end), flags=("failed",))
            return trial, failed, None
        end = windows[-1][2]
        details: dict[str, Any] = {"hold_s": hold_s, **({"level": level} if level is not None else {})}
        details["latency_s"] = {name: e - s for name, s, e in windows}
        kind = "park" if level is None else "sleep"
        trial = TrialRow(kind, index, "ok", started, duration_s=end - begin, details=details)
        stages = [row for name, s, e in windows for row in stage_rows(self.monitor.window(name, s, e))]
        return trial, stages, trace_bytes(self.monitor, begin, end)

    def _repeats(self, session: GenerationSession, monitored: list[bool]) -> int:
        """The repeats; returns how many in a row at the end ran out of device memory."""
        p, timeout, n = self.p, self.config.trial_timeout_s, len(monitored)
        k = 0
        out_of_memory = 0  # repeats in a row that ran out of device memory
        while k < n:
            if out_of_memory == OUT_OF_MEMORY_STRIKES:
                # each in a fresh engine: the batch does not fit, and every further repeat would fail the same
                # way after minutes of generating
                strikes = OUT_OF_MEMORY_STRIKES
                error = (
                    f"not run: the {strikes} repeats before ran out of device memory; {OUT_OF_MEMORY_HINT}"
                )
                for j in range(k, n):
                    self._record(failed_trial(j, error, time.time(), None, out_of_memory=True, not_run=True))
                return out_of_memory
            if not self._allows(f"repeat {k + 1} of {n}", self._repeat_s(session)):
                return out_of_memory
            if not session.alive:
                _notify(self.progress, "phase", phase="engine_start", index=k, total=n)
                try:
                    session.start(timeout)
                except WorkerFailed as exc:
                    error = with_held_memory(f"engine start failed: {exc}", self.monitor.memory_mib())
                    for j in range(k, n):
                        self._record(failed_trial(j, error, time.time(), None))
                    if exc.usage:
                        raise UsageError(exc.usage) from None
                    return out_of_memory
                if session.engine_info and session.engine_info.get("version"):
                    self.db.update_run(self.run_id, engine_version=session.engine_info["version"])
            started = time.time()
            t0 = time.monotonic()
            extra: dict[str, Any] = {
                "worker_start": session.starts,
                "worker_pid": session.worker.pid if session.worker else None,
                "engine_info": session.engine_info,
            }
            try:
                cut = self.config.warmup_tokens
                if self.config.warmup and not session.is_warm(p.requests, p.sampling, cut):
                    _notify(self.progress, "phase", phase="warmup", index=k, total=n)
                    warm = session.warm_up(p.requests, p.sampling, timeout, cut)
                    if warm is not None:
                        trial, stages, requests, trace = measure_warmup(
                            k, warm, self.monitor, started, p.prompt_tokens, extra
                        )
                        self._record(trial, stages, requests, trace)
                        _notify(
                            self.progress,
                            "warmed",
                            index=k,
                            total=n,
                            duration_s=trial.duration_s,
                            output_tokens=trial.output_tokens,
                        )
                _notify(self.progress, "phase", phase="generate", index=k, total=n)
                monitor = self.monitor
                extra["monitored"] = monitored[k] and self.config.monitor
                if not monitored[k]:
                    from joulebench.runner.monitoring import NullMonitor

                    monitor = NullMonitor("sampler paused for an unmonitored repeat")
                    self.monitor.pause()
                started, t0 = time.time(), time.monotonic()
                try:
                    batch = session.generate(f"repeat-{k}", p.requests, p.sampling, timeout)
                finally:
                    if not monitored[k]:
                        self.monitor.resume()
            except WorkerFailed as exc:
                session.kill()
                out_of_memory = out_of_memory + 1 if exc.out_of_memory else 0
                details = {
                    "timed_out": exc.timed_out,
                    **({"out_of_memory": True} if exc.out_of_memory else {}),
                }
                self._record(failed_trial(k, str(exc), started, time.monotonic() - t0, **details))
                k += 1
                continue
            out_of_memory = 0
            self._record(*measure_batch(p, k, batch, monitor, started, extra))
            k += 1
        return out_of_memory

    def _expect_s(self, kind: str) -> float:
        return 0.0 if self.budget is None else self.budget.expect_s(kind)

    def _repeat_s(self, session: GenerationSession) -> float:
        """A repeat, with the engine start and the warm-up it needs first."""
        if self.budget is None:
            return 0.0
        p = self.p
        start = 0.0 if session.alive else self._expect_s(SETUP)
        warm = self.config.warmup and not (
            session.alive and session.is_warm(p.requests, p.sampling, self.config.warmup_tokens)
        )
        return start + (2 if warm else 1) * self._expect_s(GENERATE)

    def _allows(self, what: str, duration_s: float) -> bool:
        """Whether the next step fits the time limit; the first that does not stops the run, said once."""
        if self.budget is None:
            return True
        said = self.budget.stopped is not None
        if self.budget.allows(what, duration_s):
            return True
        if not said:
            _notify(self.progress, "time_limit", message=self.budget.stopped)
        return False

    def first_step_fits(self, session: GenerationSession) -> bool:
        """Whether the idle baseline and the run's first trial fit the time limit: a run that cannot
        finish even one trial is not begun (no row, no engine start)."""
        if self.budget is None:
            return True
        p = self.p
        warm = session.alive and session.is_warm(p.requests, p.sampling, self.config.warmup_tokens)
        first_s = opening_s(self.config, self.budget.first, started=session.alive, warm=warm)
        return self.budget.allows("its first trial", first_s)

    def finish(self, status: str) -> None:
        try:
            self.monitor.stop()
        finally:
            env = dict(getattr(self, "environment", {}))
            if env:
                env["devices_end"] = _device_info(self.monitor, "end")
                self.db.update_run(self.run_id, environment=env)
        self.db.finish_run(self.run_id, status)
        _notify(self.progress, "run_end", run_id=self.run_id, status=status)


#: trial kinds whose durations tell what the next trial of their kind will take
_BUDGET_KIND = {"setup": SETUP, "generation": GENERATE, "warmup": GENERATE, "park": PARK}


def _budget_kind(trial: TrialRow) -> str | None:
    if trial.kind == "sleep":
        level = trial.details.get("level")
        return sleep_kind(level) if isinstance(level, int) else None
    return _BUDGET_KIND.get(trial.kind)


def repeat_plan(repeats: int, unmonitored: int) -> list[bool]:
    """Which repeats are measured (True) and which run with the sampler paused (False): alternating from a
    measured one, so that drift (clocks, temperature) falls on both kinds alike; the rest at the end."""
    out: list[bool] = []
    for i in range(max(repeats, unmonitored)):
        out += [True] if i < repeats else []
        out += [False] if i < unmonitored else []
    return out


def _device_info(monitor: RunMonitor, when: str) -> list[Any]:
    from dataclasses import asdict, is_dataclass

    info = monitor.device_info().get(when, [])
    return [asdict(d) if is_dataclass(d) else d for d in info]  # type: ignore[arg-type]


def _log_dir_from_env() -> Path | None:
    """A sweep's log folder, set for the runs it makes (``joulebench sweep`` sets it)."""
    import os

    folder = os.environ.get(LOG_DIR_ENV)
    return Path(folder) if folder and Path(folder).is_dir() else None


def _open_db(db: ResultsDB | str | Path, progress: Progress | None) -> tuple[ResultsDB, bool]:
    if isinstance(db, ResultsDB):
        return db, False
    return ResultsDB(db, on_busy=lambda message: _notify(progress, "db_busy", message=message)), True


def _open_existing(db: ResultsDB | str | Path, progress: Progress | None) -> tuple[ResultsDB | None, bool]:
    """An existing database is opened (and its schema checked) before anything else; a new one is
    created only once the run's input has been checked, so bad input leaves no empty file behind."""
    if isinstance(db, ResultsDB) or not Path(db).exists():
        return (db, False) if isinstance(db, ResultsDB) else (None, False)
    return _open_db(db, progress)


def _execute(
    p: Prepared,
    db: ResultsDB,
    progress: Progress | None,
    session: GenerationSession | None,
    log_dir: Path | None,
    deadline: Deadline | None = None,
) -> RunSummary | None:
    """One run; ``None`` when ``deadline`` leaves no time for its first trial (nothing is written)."""
    from joulebench.runner.summary import summarize_run

    with tempfile.TemporaryDirectory(prefix="joulebench-run-") as tmp:
        budget = None if deadline is None else Budget(deadline, p.config.sweep_key)
        run = _Run(p, db, progress, Path(tmp), log_dir or Path(tmp), budget)
        own = session is None
        if session is None:
            session = GenerationSession(p.engine, p.engine_config, log_dir=run.log_dir, env=run.env)
        if not run.first_step_fits(session):
            return None
        run.create()
        status = "failed"
        try:
            run.start_monitor()
            run.idle()
            run.setup_trials()
            run.generation_trials(session)
            if p.config.lifecycle_cycles > 0:
                run.lifecycle_trials(session)
            if own:
                session.close()
            status = _run_status(run.statuses)
            if budget is not None and budget.stopped is not None:
                # unfinished, as a killed run is: --resume runs what it lacks
                status = "interrupted"
                run.environment["time_limit"] = budget.stopped
                db.update_run(run.run_id, environment=run.environment)
        except KeyboardInterrupt:
            status = "interrupted"
            session.kill()
            raise
        except BaseException:
            session.kill()
            raise
        finally:
            run.finish(status)
    return RunSummary(run.run_id, status, summarize_run(db, run.run_id))


def execute(
    config: RunConfig,
    db: ResultsDB | str | Path,
    *,
    progress: Progress | None = None,
    engine_session: GenerationSession | None = None,
    log_dir: Path | None = None,
) -> RunSummary:
    """Run one benchmark and store it. ``engine_session`` (a started or unstarted session whose engine
    configuration matches) is reused for the generation repeats and left open for the caller. The
    engines' logs are kept in ``log_dir`` (recorded with the run); without one they go with the run."""
    log_dir = log_dir or _log_dir_from_env()
    store, owned = _open_existing(db, progress)
    try:
        p = prepare(config)
        if engine_session is not None and not engine_session.serves(p.engine, p.engine_config):
            raise UsageError("engine_session was started for another engine configuration")
        if store is None:
            store, owned = _open_db(db, progress)
        result = _execute(p, store, progress, engine_session, log_dir)
        assert result is not None  # only a deadline declines a run
        return result
    finally:
        if owned and store is not None:
            store.close()


def execute_many(
    configs: Sequence[RunConfig],
    db: ResultsDB | str | Path,
    *,
    progress: Progress | None = None,
    log_dir: Path | None = None,
    deadline: Deadline | None = None,
) -> list[RunSummary]:
    """Run several workloads against one engine start (configs must differ only in workload settings).

    Every config is checked before anything runs. Each config is its own run (its own setup trials
    too); the generation repeats of all of them share one warm worker, sized for the largest batch.
    If a crash forces a restart, the fresh worker serves the remaining runs. With a ``deadline``, no
    trial starts that is expected to end past it: a run cut short ends ``interrupted`` (its reason in
    ``environment.time_limit``), and the configs after it are not begun (not returned).
    """
    log_dir = log_dir or _log_dir_from_env()
    store, owned = _open_existing(db, progress)
    try:
        prepared = [prepare(c) for c in configs]
        if not prepared:
            return []
        if len({engine_key(p.engine, p.engine_config) for p in prepared}) > 1:
            raise UsageError(
                "execute_many needs one engine configuration "
                "(engine, model, device, dtype, options, environment)"
            )
        if store is None:
            store, owned = _open_db(db, progress)
        results: list[RunSummary] = []
        with tempfile.TemporaryDirectory(prefix="joulebench-session-") as tmp:
            shared = _shared_engine_config(prepared)
            logs = log_dir or Path(tmp)
            env = {LOG_DIR_ENV: str(logs)}
            with GenerationSession(prepared[0].engine, shared, log_dir=logs, env=env) as session:
                for p in prepared:
                    result = _execute(p, store, progress, session, log_dir, deadline)
                    if result is None:
                        break
                    results.append(result)
                    if result.status == "interrupted":
                        break  # stopped by the deadline: what follows would not fit either
        return results
    finally:
        if owned and store is not None:
            store.close()


def _shared_engine_config(prepared: Sequence[Prepared]) -> Any:
    configs = [p.engine_config for p in prepared]
    batch = max((c.max_batch_size or 0) for c in configs) or None
    lens = [c.max_model_len for c in configs]
    max_len = None if any(v is None for v in lens) else max(v for v in lens if v is not None)
    return replace(configs[0], max_batch_size=batch, max_model_len=max_len)

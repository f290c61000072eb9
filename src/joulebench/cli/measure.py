"""`joulebench measure -- CMD [ARGS...]`: the energy of one command, per component and per stage."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from joulebench.errors import UsageError

if TYPE_CHECKING:
    from joulebench.measurement.monitor import Monitor

USAGE = "joulebench measure [OPTIONS] -- CMD [ARGS...]"


def measure(
    command: Annotated[
        list[str] | None, typer.Argument(help="The command to run (after --), no shell.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON document (docs/measure-json.md).")
    ] = False,
    interval_ms: Annotated[
        float, typer.Option("--interval-ms", help="Sampling interval of each source.")
    ] = 100.0,
    gpu_power_interval_ms: Annotated[
        float, typer.Option("--gpu-power-interval-ms", help="Interval of the GPU power timeline.")
    ] = 20.0,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Also save a trace (.jsonl/.csv[.gz]).")
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate/--no-estimate",
            help="Estimate CPU and DRAM where no source measures them, labelled estimated (the default).",
        ),
    ] = True,
    cpu_tdp_w: Annotated[float | None, typer.Option("--cpu-tdp-w", help="CPU TDP per socket (W).")] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only these sources (repeatable).")
    ] = None,
    replay: Annotated[
        Path | None, typer.Option("--replay", help="Compute from a trace; run nothing.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to a file.")] = None,
) -> None:
    """Run CMD, measure its energy per component, print it, and exit with CMD's exit code.

    CMD gets JOULEBENCH_STAGE_FILE; stages it marks (joulebench.stage or the file protocol) are reported.
    """
    from joulebench.measurement.monitor import MIN_INTERVAL_S
    from joulebench.measurement.trace import trace_kind

    if output is not None:
        _check_writable("--output", output)
    if replay is not None:
        if command:
            raise UsageError("--replay computes from a trace: give no command with it")
        _finish(*_replay(replay), as_json=as_json, output=output)
        return
    if not command:
        raise UsageError(f"no command given: {USAGE}")
    for flag, value in (("--interval-ms", interval_ms), ("--gpu-power-interval-ms", gpu_power_interval_ms)):
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} must be positive and finite, got {value:g}")
        if value < MIN_INTERVAL_S * 1000:
            raise UsageError(
                f"{flag} must be at least {MIN_INTERVAL_S * 1000:g} ms, got {value:g}: finer, the sampler "
                "would spin a core and measure itself"
            )
    if cpu_tdp_w is not None and not (cpu_tdp_w > 0 and math.isfinite(cpu_tdp_w)):
        raise UsageError(f"--cpu-tdp-w must be positive and finite, got {cpu_tdp_w:g}")
    if trace is not None:
        trace_kind(trace)
        _check_writable("--trace", trace)
    doc, text, rc = _run(
        command,
        interval_s=interval_ms / 1000.0,
        gpu_power_interval_s=gpu_power_interval_ms / 1000.0,
        estimate=estimate,
        cpu_tdp_w=cpu_tdp_w,
        source_names=source or [],
        trace=trace,
    )
    _finish(doc, text, as_json=as_json, output=output)
    raise typer.Exit(rc)


def _check_writable(option: str, path: Path) -> None:
    """Refuse before anything runs a file that could not be written afterwards."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder")
    if path.exists() or path.is_symlink():
        raise UsageError(f"{option}: {path} exists, and joulebench writes no file it did not create")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{option}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option}: folder {folder} is not writable")


def _finish(doc: dict[str, Any], text: str, *, as_json: bool, output: Path | None) -> None:
    body = json.dumps(doc, indent=2) if as_json else text
    if output is not None:
        try:
            output.write_text(body + "\n")
            return
        except OSError as exc:
            # the command has run: never lose its result, print it where it would go without -o
            print(f"joulebench: error: cannot write {output}: {exc}; the report follows", file=sys.stderr)
    if as_json:
        print(body)
    else:
        # stderr, like time(1): the command's own stdout stays clean for pipes
        print(body, file=sys.stderr)


def _make_monitor(names: list[str], **opts: object) -> Monitor:
    from joulebench.measurement.detect import check_names, make_source
    from joulebench.measurement.monitor import Monitor

    interval_s = float(opts["interval_s"])  # type: ignore[arg-type]
    gpu_power_interval_s = float(opts["gpu_power_interval_s"])  # type: ignore[arg-type]
    cpu_tdp_w = opts["cpu_tdp_w"]
    estimate = bool(opts["estimate"])
    sources = None
    if names:
        names = check_names(names)
        estimate = estimate or "estimate" in names
        sources = [
            make_source(n, interval_s=interval_s, gpu_power_interval_s=gpu_power_interval_s)
            for n in names
            if n != "estimate"
        ]
    return Monitor(
        sources,
        interval_s=interval_s,
        gpu_power_interval_s=gpu_power_interval_s,
        estimate=estimate,
        cpu_tdp_w=cpu_tdp_w,  # type: ignore[arg-type]
    )


def _run(
    command: list[str],
    *,
    interval_s: float,
    gpu_power_interval_s: float,
    estimate: bool,
    cpu_tdp_w: float | None,
    source_names: list[str],
    trace: Path | None,
) -> tuple[dict[str, Any], str, int]:
    from joulebench.measurement.markers import STAGE_FILE_ENV
    from joulebench.measurement.summary import build_document, render_text

    monitor = _make_monitor(
        source_names,
        interval_s=interval_s,
        gpu_power_interval_s=gpu_power_interval_s,
        estimate=estimate,
        cpu_tdp_w=cpu_tdp_w,
    )
    with tempfile.TemporaryDirectory(prefix="joulebench-measure-") as tmp:
        stage_file = Path(tmp) / "stages"
        stage_file.touch()
        env = {**os.environ, STAGE_FILE_ENV: str(stage_file)}
        monitor.start()
        monitor.follow_stage_file(stage_file)
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(command, env=env)
        except OSError as exc:
            monitor.stop()
            reason = "command not found" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            raise UsageError(f"cannot run {command[0]}: {reason}") from exc
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            # the terminal sent SIGINT to the child too; let it finish, then still report
            try:
                rc = proc.wait(timeout=10)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                proc.kill()
                rc = proc.wait()
        t1 = time.monotonic()
        monitor.stop()
    rc = 128 - rc if rc < 0 else rc  # killed by signal N: the shell convention 128 + N
    total = monitor.window("command", t0, t1)
    stages = monitor.stages()
    warnings = monitor.stage_file_errors()
    trace_path = None
    if trace is not None:
        try:
            trace_path = str(monitor.write_trace(trace, t0, t1))
        except OSError as exc:  # the command has run: report its energy anyway, and say why no trace
            warnings.append(f"trace not written to {trace}: {exc}")
    statuses = monitor.statuses()
    doc = build_document(
        total=total,
        stages=stages,
        statuses=statuses,
        devices=monitor.device_info(),
        command=list(command),
        exit_code=rc,
        interval_ms=interval_s * 1000.0,
        trace=trace_path,
        warnings=warnings,
    )
    head = f"joulebench: {shlex.join(command)} exited with {rc} after {total.duration_s:.3f} s"
    text = render_text(total, stages, statuses, head)
    if warnings:
        text += "\nwarnings:\n" + "\n".join(f"  {w}" for w in warnings)
    return doc, text, rc


def _replay(path: Path) -> tuple[dict[str, Any], str]:
    from joulebench.measurement.monitor import Monitor
    from joulebench.measurement.summary import build_document, render_text

    monitor = Monitor.from_trace(path)
    if monitor.start_s is None or monitor.end_s is None:
        raise UsageError(f"trace {path} has no time range")
    total = monitor.window("command", monitor.start_s, monitor.end_s)
    stages = monitor.stages()
    statuses = monitor.statuses()
    doc = build_document(
        total=total,
        stages=stages,
        statuses=statuses,
        devices=monitor.device_info(),
        command=None,
        exit_code=None,
        interval_ms=None,
        replay=str(path),
    )
    head = f"joulebench: replay of {path} ({total.duration_s:.3f} s)"
    return doc, render_text(total, stages, statuses, head)


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command("measure")(measure)

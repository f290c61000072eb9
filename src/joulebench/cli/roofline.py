"""`joulebench roofline`: measure what memory traffic and arithmetic cost in energy on each GPU, and store
it, so that `run`, `report` and `advise` can show how far a measured J/token is from the floor."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from joulebench.errors import UsageError

if TYPE_CHECKING:
    from joulebench.measurement.monitor import Monitor
    from joulebench.roofline.measure import Kernel, KernelEnergy, Target

Opt = typer.Option


def roofline(
    db: Annotated[Path, Opt("--db", help="The results database to add the measurement to.")] = Path(
        "joulebench.db"
    ),
    seconds: Annotated[float, Opt("--seconds", help="How long each microbenchmark runs on each GPU.")] = 10.0,
    idle_seconds: Annotated[float, Opt("--idle-seconds", help="How long the idle baseline is taken.")] = 5.0,
    copy_mib: Annotated[
        int, Opt("--copy-mib", help="Size of the buffer the copy streams (MiB; far beyond every cache).")
    ] = 2048,
    gemm_size: Annotated[int, Opt("--gemm-size", help="Side of the square matrices multiplied.")] = 8192,
    gemm_dtype: Annotated[
        str, Opt("--gemm-dtype", help="The GEMM's dtype (the engines': bfloat16).")
    ] = "bfloat16",
    as_json: Annotated[bool, Opt("--json", help="Print the measurement as JSON on stdout.")] = False,
) -> None:
    """Run a streaming copy and a dense GEMM on each GPU, measure their energy by the GPU's own counter
    (total and above idle), and store it in the database (docs/roofline.md)."""
    import sys

    for flag, value in (("--seconds", seconds), ("--idle-seconds", idle_seconds)):
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} must be a positive number of seconds, got {value:g}")
    for flag, count in (("--copy-mib", copy_mib), ("--gemm-size", gemm_size)):
        if count < 1:
            raise UsageError(f"{flag} must be at least 1, got {count}")
    from joulebench.roofline.kernels import copy_kernel, gemm_kernel
    from joulebench.roofline.measure import measure
    from joulebench.runner.monitoring import trace_bytes
    from joulebench.store.db import ResultsDB

    if db.exists():
        with ResultsDB(db):  # a file that is not ours fails here, before minutes of measuring
            pass
    monitor = _monitor()
    try:
        targets = _targets(monitor)
        if not targets:
            raise UsageError(
                "no GPU to measure: roofline measures GPUs through NVML or amdsmi "
                "(`joulebench sources` says why none is readable)"
            )
        total_s = idle_seconds + 2 * seconds * len(targets)
        started = time.monotonic()

        def progress(step: str) -> None:
            left = max(total_s - (time.monotonic() - started), 0.0)
            print(f"roofline: {step} (about {left:.0f} s left)", file=sys.stderr, flush=True)

        def kernels_for(target: Target) -> list[Kernel]:
            return [copy_kernel(target.torch_device, copy_mib * 2**20),
                    gemm_kernel(target.torch_device, gemm_size, gemm_dtype)]  # fmt: skip

        results = measure(monitor, targets, kernels_for, seconds, idle_seconds, progress)
        info = {d.device: d for d in monitor.device_info()["start"]}
        # the readings each energy came from, so that `db recompute` can compute it again
        traces = [trace_bytes(monitor, r.work.begin_s, r.work.end_s) for r in results]
    finally:
        monitor.stop()
    rows = _rows(results, info)
    with ResultsDB(db) as store:
        store.add_roofline(rows, traces)
        floored = _runs_with_a_floor(store)
    if as_json:
        print(json.dumps([_summary(r) for r in results], indent=2))
    else:
        for line in _lines(results):
            print(line)
        print(
            f"stored in {db}: `joulebench run` and `joulebench report` show each GPU J/token against the"
            f" floor of its card; {floored} run(s) here have one now"
        )


def _monitor() -> Monitor:
    """The GPUs' sources only: CPU and node energy say nothing of a GPU's limits."""
    from joulebench.measurement.detect import make_source
    from joulebench.measurement.monitor import Monitor

    monitor = Monitor([make_source(name) for name in ("nvml", "amdsmi")], estimate=False)
    monitor.start()
    return monitor


def _targets(monitor: Monitor) -> list[Target]:
    from joulebench.errors import require
    from joulebench.roofline.measure import gpu_targets

    targets = gpu_targets(monitor)
    if targets and not require("torch", extra="hf").cuda.is_available():
        raise UsageError(
            "torch sees no GPU (a CPU-only torch build?): install the CUDA or ROCm build of torch"
        )
    return targets


def _runs_with_a_floor(store: Any) -> int:
    """The runs of the database that a floor is known for now (their card measured, their model's shape)."""
    from joulebench.results.floor import run_floor

    roofline = store.roofline()
    return sum(run_floor(run, roofline) is not None for run in store.runs())


def _rows(results: list[KernelEnergy], info: dict[str, Any]) -> list[Any]:
    import socket
    from dataclasses import asdict

    from joulebench import __version__
    from joulebench.store.rows import RooflineRow

    now = time.time()
    return [
        RooflineRow(
            created_unix_s=now,
            host=socket.gethostname(),
            joulebench_version=__version__,
            device=r.target.device,
            device_name=r.target.name,
            device_uuid=r.target.uuid,
            kernel=r.work.kernel,
            unit=r.work.unit,
            dtype=r.work.dtype,
            units=r.work.units,
            start_s=r.work.begin_s,
            end_s=r.work.end_s,
            energy_j=r.energy_j,
            method=r.method,
            uncertainty_j=r.uncertainty_j,
            idle_power_w=r.idle_power_w,
            above_idle_energy_j=r.above_idle_energy_j,
            flags=r.flags,
            environment={"device": asdict(info[r.target.device])} if r.target.device in info else {},
        )
        for r in results
    ]


def _summary(r: KernelEnergy) -> dict[str, Any]:
    return {
        "device": r.target.device,
        "card": r.target.name,
        "kernel": r.work.kernel,
        "dtype": r.work.dtype,
        "unit": r.work.unit,
        "units": r.work.units,
        "duration_s": r.duration_s,
        "rate_per_s": r.work.rate_per_s,
        "energy_j": r.energy_j,
        "uncertainty_j": r.uncertainty_j,
        "idle_power_w": r.idle_power_w,
        "above_idle_energy_j": r.above_idle_energy_j,
        "j_per_unit": r.j_per_unit,
        "above_idle_j_per_unit": r.above_idle_j_per_unit,
        "bound_j_per_unit": r.bound_j_per_unit,
    }


def _lines(results: list[KernelEnergy]) -> list[str]:
    """pJ per byte and per FLOP: the scale in which memory and arithmetic energies are quoted."""
    out = []
    for r in results:
        scale, rate_unit = (1e9, "GB/s") if r.work.unit == "byte" else (1e12, "TFLOP/s")
        bound = f" ± {r.bound_j_per_unit * 1e12:.3g}" if r.bound_j_per_unit is not None else ""
        above = r.above_idle_j_per_unit
        above_text = f", {above * 1e12:.3g}{bound} above idle" if above is not None else ""
        rate = f"{r.work.rate_per_s / scale:.4g} {rate_unit}"
        energy = f"{r.energy_j:.4g} J in {r.duration_s:.3g} s, idle {r.idle_power_w or 0:.4g} W"
        per_unit = f"{r.j_per_unit * 1e12:.3g} pJ/{r.work.unit}{above_text}"
        out.append(
            f"{r.target.device} {r.target.name}: {r.work.kernel} ({r.work.dtype}) {rate}, {per_unit}"
            f" ({energy})"
        )
    return out


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command("roofline")(roofline)

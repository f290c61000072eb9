"""GPU measurement quality and cost, on a machine with an NVIDIA GPU (needs torch and nvidia-ml-py).

1. Accuracy: window energy from the NVML energy counter vs the integral of the 20 ms power timeline,
   for 0.5, 2 and 10 s windows, at idle and under a steady bf16 matmul load (target: within 2 % for
   windows of 2 s and more).
2. Overhead: a torch matmul workload's throughput with and without a running Monitor, alternated
   several times in the same process (target: at most 0.5 % lost).
3. Sampler cost: this process's CPU time / wall time while the Monitor samples and the main thread sleeps,
   and the cost of one energy read and one power read.

About 2.5 minutes on an H100. Writes JSON to --out.

    python benchmarks/gpu_measurement.py --out gpu_measurement-h100.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

WINDOWS_S = (0.5, 2.0, 10.0)


def _matmul_load(torch: Any, n: int) -> tuple[Any, Any]:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    return a, b


def run_load(torch: Any, ab: tuple[Any, Any], seconds: float) -> int:
    """Matmuls back to back for ``seconds``; returns how many ran (synchronised every 8)."""
    a, b = ab
    count = 0
    end = time.perf_counter() + seconds
    while True:
        for _ in range(8):
            torch.mm(a, b)
        count += 8
        torch.cuda.synchronize()
        if time.perf_counter() >= end:
            return count


def _busy(torch: Any, ab: tuple[Any, Any], stop: Any) -> None:
    while not stop.is_set():
        run_load(torch, ab, 0.5)


def accuracy(torch: Any, ab: tuple[Any, Any], repeats: int) -> tuple[list[dict[str, Any]], Any, Any]:
    """Windows are marked while a background thread keeps the GPU steadily busy (or idle) and computed
    after the fact, so that no window edge sits on a change of load."""
    import threading

    from joulebench.measurement.accounting import integrate_power
    from joulebench.measurement.monitor import Monitor
    from joulebench.measurement.nvml import NvmlSource
    from joulebench.measurement.records import Component

    marks: list[tuple[str, float, float, float]] = []
    with Monitor([NvmlSource(gpu_indices=[0])], interval_s=0.1, gpu_power_interval_s=0.02) as mon:
        for condition in ("idle", "load"):
            stop = threading.Event()
            worker = None
            if condition == "load":
                worker = threading.Thread(target=_busy, args=(torch, ab, stop), daemon=True)
                worker.start()
                time.sleep(3.0)  # reach steady clocks and temperature first
            for length in WINDOWS_S:
                for _ in range(repeats):
                    t0 = time.monotonic()
                    time.sleep(length)
                    marks.append((condition, length, t0, time.monotonic()))
            stop.set()
            if worker is not None:
                worker.join()
                torch.cuda.synchronize()
        rows: list[dict[str, Any]] = []
        for condition, length, t0, t1 in marks:
            result = mon.window(f"{condition}-{length}", t0, t1)
            counter = next(c for c in result.components if c.device == "gpu0")
            ch = next(ch for key, ch in mon.log.channels.items() if key[1] is Component.GPU)
            assert ch.power is not None
            integ = integrate_power(ch.power, t0, t1)
            integrated_j = integ[0] if integ else None
            rel = (
                (integrated_j - counter.energy_j) / counter.energy_j
                if integrated_j is not None and counter.energy_j
                else None
            )
            rows.append(
                {
                    "condition": condition,
                    "window_s": length,
                    "duration_s": t1 - t0,
                    "counter_energy_j": counter.energy_j,
                    "integrated_energy_j": integrated_j,
                    "relative_difference": rel,
                    "avg_power_w": counter.avg_power_w,
                    "peak_power_w": counter.peak_power_w,
                    "flags": list(counter.flags),
                }
            )
            print(
                f"  {condition:<4} {length:>5.1f} s  counter {counter.energy_j:9.1f} J  "
                f"timeline {integrated_j:9.1f} J  diff {100 * (rel or 0):+.2f} %",
                flush=True,
            )
        info = mon.device_info()
        statuses = mon.statuses()
    return rows, info, statuses


def overhead(torch: Any, ab: tuple[Any, Any], rounds: int, seconds: float) -> dict[str, Any]:
    from joulebench.measurement.monitor import Monitor

    rates: dict[str, list[float]] = {"off": [], "on": []}
    run_load(torch, ab, 2.0)
    for i in range(rounds):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        for mode in order:
            if mode == "on":
                with Monitor(interval_s=0.1, gpu_power_interval_s=0.02):
                    t0 = time.perf_counter()
                    n = run_load(torch, ab, seconds)
                    rate = n / (time.perf_counter() - t0)
            else:
                t0 = time.perf_counter()
                n = run_load(torch, ab, seconds)
                rate = n / (time.perf_counter() - t0)
            rates[mode].append(rate)
        print(f"  round {i}: off {rates['off'][-1]:.2f}/s  on {rates['on'][-1]:.2f}/s", flush=True)
    off, on = statistics.mean(rates["off"]), statistics.mean(rates["on"])
    return {
        "rounds": rounds,
        "seconds_per_run": seconds,
        "matmuls_per_s_off": rates["off"],
        "matmuls_per_s_on": rates["on"],
        "mean_off": off,
        "mean_on": on,
        "throughput_lost": (off - on) / off,
        "stdev_off_relative": statistics.stdev(rates["off"]) / off if rounds > 1 else None,
    }


def sampler_cost(seconds: float) -> dict[str, Any]:
    import pynvml

    from joulebench.measurement.monitor import Monitor

    with Monitor(interval_s=0.1, gpu_power_interval_s=0.02) as mon:
        time.sleep(0.5)
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        n_power = sum(len(ch.power or ()) for ch in mon.log.channels.values())
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    reads: dict[str, float] = {}
    for name, fn in (
        ("energy_counter", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)),
        (
            "power_instant_field",
            lambda: pynvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_POWER_INSTANT]),
        ),
        ("power_usage", lambda: pynvml.nvmlDeviceGetPowerUsage(h)),
    ):
        ts = []
        for _ in range(50):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        reads[name + "_read_us"] = statistics.median(ts) * 1e6
    pynvml.nvmlShutdown()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_fraction": cpu / wall,
        "power_points": n_power,
        **reads,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cond in ("idle", "load"):
        for length in WINDOWS_S:
            diffs = [
                abs(r["relative_difference"])
                for r in rows
                if r["condition"] == cond and r["window_s"] == length
            ]
            out[f"{cond}_{length:g}s_max_abs_relative_difference"] = max(diffs) if diffs else None
    long_ok = [
        abs(r["relative_difference"]) <= 0.02
        for r in rows
        if r["window_s"] >= 2.0 and r["relative_difference"] is not None
    ]
    out["windows_ge_2s_within_2pct"] = all(long_ok) if long_ok else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON result file")
    parser.add_argument("--repeats", type=int, default=2, help="windows of each length and condition")
    parser.add_argument("--rounds", type=int, default=4, help="on/off rounds of the overhead test")
    parser.add_argument("--run-seconds", type=float, default=4.0, help="length of one overhead run")
    parser.add_argument("--matmul-n", type=int, default=8192, help="square matrix size of the load")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("torch is required: pip install torch", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("no CUDA GPU visible", file=sys.stderr)
        return 2
    ab = _matmul_load(torch, args.matmul_n)
    t_start = time.perf_counter()
    print("accuracy (counter vs timeline):", flush=True)
    rows, info, statuses = accuracy(torch, ab, args.repeats)
    print("overhead (throughput with and without the monitor):", flush=True)
    over = overhead(torch, ab, args.rounds, args.run_seconds)
    print(f"  throughput lost: {100 * over['throughput_lost']:.3f} %", flush=True)
    print("sampler cost:", flush=True)
    cost = sampler_cost(5.0)
    print(f"  CPU {100 * cost['cpu_fraction']:.2f} % of one core; reads {cost}", flush=True)
    doc = {
        "benchmark": "gpu_measurement",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "devices": {
            k: [{"device": d.device, "name": d.name, **d.attributes} for d in v] for k, v in info.items()
        },
        "sources": [{"name": s.name, "available": s.available, "reason": s.reason} for s in statuses],
        "accuracy": rows,
        "accuracy_summary": summarise(rows),
        "overhead": over,
        "overhead_within_0_5pct": over["throughput_lost"] <= 0.005,
        "sampler_cost": cost,
        "total_s": time.perf_counter() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out} ({doc['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""joulebench's window energy against a bare hand integral of the NVML energy counter, on a real GPU
(needs torch and nvidia-ml-py; about 5 minutes).

The same windows (0.1, 0.5, 2, 10 and 30 s; at idle and under a steady bf16 matmul load) are measured
twice at once:

* by joulebench: a Monitor reading the counter every 100 ms, windows computed by docs/counters.md's rule,
  each with its ``uncertainty_j``;
* by hand: a thread reading ``nvmlDeviceGetTotalEnergyConsumption`` in a tight loop (about every
  millisecond), so each update is seen within a read of when it happened, and the window's energy is the
  counter linearly interpolated between those updates at both edges.

Targets: agreement within 0.5 % for windows of 2 s or more, and every window's difference inside its
stated uncertainty. Writes JSON to --out and prints a table; name the card beside every number.

    python benchmarks/counter_truth_gpu.py --out benchmarks/results/counter_truth-h100.json
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

WINDOWS_S = (0.1, 0.5, 2.0, 10.0, 30.0)


class HandCounter:
    """The counter read as fast as NVML answers, its changes kept: each at the first read showing it."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml, self.handle = nvml, handle
        self.t_s: list[float] = []
        self.mj: list[int] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            value = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            t = time.monotonic()
            self.reads += 1
            if value != last:
                self.t_s.append(t)
                self.mj.append(value)
                last = value

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def energy_j(self, a: float, b: float) -> float:
        return (self._at(b) - self._at(a)) / 1000.0

    def _at(self, t: float) -> float:
        i = min(max(bisect_right(self.t_s, t), 1), len(self.t_s) - 1)
        t0, t1, e0, e1 = self.t_s[i - 1], self.t_s[i], self.mj[i - 1], self.mj[i]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def _busy(torch: Any, stop: threading.Event) -> None:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    while not stop.is_set():
        for _ in range(8):
            torch.mm(a, b)
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import pynvml
    import torch

    from joulebench.measurement.monitor import Monitor
    from joulebench.measurement.nvml import NvmlSource
    from joulebench.measurement.records import Component

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    card = pynvml.nvmlDeviceGetName(handle)
    card = card.decode() if isinstance(card, bytes) else str(card)
    hand = HandCounter(pynvml, handle)
    marks: list[tuple[str, float, float, float]] = []
    source = NvmlSource(gpu_indices=[0])
    with Monitor([source], interval_s=0.1, gpu_power_interval_s=0.02) as mon:
        hand.start()
        for condition in ("idle", "load"):
            stop = threading.Event()
            worker = None
            if condition == "load":
                worker = threading.Thread(target=_busy, args=(torch, stop), daemon=True)
                worker.start()
                time.sleep(5.0)  # steady clocks and temperature first
            else:
                time.sleep(2.0)
            for length in WINDOWS_S:
                for _ in range(args.repeats):
                    t0 = time.monotonic()
                    time.sleep(length)
                    marks.append((condition, length, t0, time.monotonic()))
                    time.sleep(0.05)
            stop.set()
            if worker is not None:
                worker.join()
        time.sleep(0.5)  # both readers see the update after the last window
        windows = [(c, n, a, b, mon.window("w", a, b)) for c, n, a, b in marks]
        hand.stop()
    meta = next(m for m in mon.log.sources.values() if m.name == "nvml")
    rows = []
    for condition, length, a, b, result in windows:
        gpu = next(c for c in result.components if c.component is Component.GPU and c.device == "gpu0")
        by_hand = hand.energy_j(a, b)
        diff = (gpu.energy_j or 0.0) - by_hand
        rows.append(
            {
                "condition": condition,
                "window_s": length,
                "duration_s": b - a,
                "joulebench_j": gpu.energy_j,
                "uncertainty_j": gpu.uncertainty_j,
                "hand_j": by_hand,
                "diff_j": diff,
                "rel_diff": diff / by_hand if by_hand else None,
                "inside_bound": gpu.uncertainty_j is not None and abs(diff) <= gpu.uncertainty_j,
                "flags": list(gpu.flags),
            }
        )
    long = [r for r in rows if r["window_s"] >= 2.0]
    doc = {
        "card": card,
        "driver": pynvml.nvmlSystemGetDriverVersion(),
        "host": platform.node(),
        "counter_period_s": meta.counter_period_s,
        "period_measured": meta.period_measured,
        "hand_reads": hand.reads,
        "hand_updates": len(hand.t_s),
        "max_abs_rel_diff_windows_ge_2s": max(abs(r["rel_diff"]) for r in long if r["rel_diff"] is not None),
        "all_inside_bound": all(r["inside_bound"] for r in rows),
        "windows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{card}, counter period {meta.counter_period_s:.4f} s (measured: {meta.period_measured})")
    print(f"{'cond':<5} {'window':>7} {'joulebench J':>13} {'± J':>8} {'hand J':>10} {'diff %':>8}  inside")
    for r in rows:
        rel = f"{100 * r['rel_diff']:+.3f}" if r["rel_diff"] is not None else "-"
        print(
            f"{r['condition']:<5} {r['window_s']:>6.1f}s {r['joulebench_j']:>13.2f} "
            f"{r['uncertainty_j']:>8.2f} {r['hand_j']:>10.2f} {rel:>8}  {r['inside_bound']}"
        )
    print(f"largest difference, windows >= 2 s: {100 * doc['max_abs_rel_diff_windows_ge_2s']:.3f} %")
    pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

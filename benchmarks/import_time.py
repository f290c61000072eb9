"""How long `import joulebench` and `joulebench --help` take, against a bare interpreter start.

joulebench runs inside the setup stage it measures, so its own start-up must stay small (target: each
<= 0.3 s wall time). Every variant runs N times, interleaved so that drift hits all alike; the median
is reported with the spread.

    python benchmarks/import_time.py --runs 15 --out benchmarks/results/import_time-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def variants() -> dict[str, list[str]]:
    script = shutil.which("joulebench")
    help_cmd = [script, "--help"] if script else [sys.executable, "-m", "joulebench", "--help"]
    return {
        "python_pass": [sys.executable, "-c", "pass"],
        "import_joulebench": [sys.executable, "-c", "import joulebench"],
        "joulebench_help": help_cmd,
    }


def time_once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per variant (default 15)")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    cmds = variants()
    for cmd in cmds.values():  # warm the page cache and .pyc files before timing
        time_once(cmd)
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            samples[name].append(time_once(cmd))
    base = statistics.median(samples["python_pass"])
    results = {}
    for name, xs in samples.items():
        med = statistics.median(xs)
        results[name] = {
            "median_s": round(med, 4),
            "min_s": round(min(xs), 4),
            "max_s": round(max(xs), 4),
            "stdev_s": round(statistics.stdev(xs), 4),
            "over_bare_python_s": round(med - base, 4),
        }
    verdict = {
        name: results[name]["median_s"] <= TARGET_S for name in ("import_joulebench", "joulebench_help")
    }
    doc = {
        "benchmark": "import_time",
        "runs": args.runs,
        "target_s": TARGET_S,
        "results": results,
        "within_target": verdict,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # other work on the machine inflates every variant alike; the load says how busy it was
            "load_average_1min": round(os.getloadavg()[0], 2),
            "processor": platform.processor() or platform.machine(),
        },
        "command_help": cmds["joulebench_help"][1:]
        if shutil.which("joulebench")
        else ["-m", "joulebench", "--help"],
    }
    for name, r in results.items():
        print(
            f"{name:<18} median {r['median_s'] * 1000:7.1f} ms  "
            f"(+{r['over_bare_python_s'] * 1000:6.1f} ms over bare)"
        )
    print("within target (<= 0.3 s):", ", ".join(f"{k}={v}" for k, v in verdict.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

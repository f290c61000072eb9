"""Wall time and peak memory of `joulebench model create` (default: llama-3.1-8b, 16 GB of bf16 weights).

Runs the CLI in a child process, so the peak resident set size is the child's alone
(``resource.getrusage(RUSAGE_CHILDREN)``), writes into a temporary folder that is deleted afterwards, and
saves the result as JSON (default: benchmarks/results/model_create-cpu.json).

    python benchmarks/model_create.py [--preset llama-3.1-8b] [--out benchmarks/results/model_create-cpu.json]

`model_create-h100-host.json` is the same run on the host of a one-H100 machine (16 cores; the GPU is not
used), with `--out` naming that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _total_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="llama-3.1-8b")
    parser.add_argument("--out", type=Path, default=RESULTS / "model_create-cpu.json")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to write the model (deleted after)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="joulebench-model-create-", dir=args.tmp_dir))
    target = workdir / args.preset
    try:
        start_s = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "joulebench", "model", "create", args.preset, str(target)],
            capture_output=True,
            text=True,
        )
        wall_s = time.monotonic() - start_s
        peak_rss_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        if proc.returncode != 0:
            sys.exit(f"model create failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        files = sorted(p for p in target.iterdir() if p.is_file())
        written_bytes = sum(p.stat().st_size for p in files)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "benchmark": "model_create",
        "preset": args.preset,
        "wall_s": round(wall_s, 2),
        "peak_rss_bytes": peak_rss_bytes,
        "peak_rss_gib": round(peak_rss_bytes / 2**30, 3),
        "written_bytes": written_bytes,
        "write_rate_gb_s": round(written_bytes / 1e9 / wall_s, 3),
        "safetensors_files": sum(p.suffix == ".safetensors" for p in files),
        "files": [p.name for p in files],
        "machine": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_bytes": _total_memory_bytes(),
            "gpu": None,
            "python": platform.python_version(),
            "numpy": _version("numpy"),
            "transformers": _version("transformers"),
            "joulebench": _version("joulebench"),
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Merge the raw result databases of a GPU study folder and build its report.

    python benchmarks/gpu_study/build_report.py docs/results/h200-2026-11-26

Reads every ``raw/*.db.gz`` in the folder (each a database written by ``run_part.sh`` or
``joulebench run`` on the GPU machine, gzip-compressed as it came back: per-token timestamps compress
50x), merges their runs into ``study.db`` with the same writer the Ray executor uses, computes every window
again from its trace with this release's accounting rule (``joulebench db recompute``; docs/counters.md),
and writes the HTML report, figures and exports into ``report/``.

Runs recorded before a sweep stored its plan's variant as the run's label (part 2) get that label in
``study.db`` from the lanes' own dry-run tables in ``raw/*lane-logs.txt``, which name each cell's key and
``engine:variant``; so ``transformers:eager`` of one part and plain ``transformers`` of another, one plan
entry, are one engine in the report. The raw databases stay as they came back.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from scrub_paths import WORK_DIRS, scrub  # beside this script

from joulebench.report.build import build_report
from joulebench.runner.recompute import recompute
from joulebench.store.db import ResultsDB
from joulebench.store.merge import merge


def main(folder: Path) -> None:
    merged = folder / "study.db"
    merged.unlink(missing_ok=True)
    target = ResultsDB(merged)
    with tempfile.TemporaryDirectory() as tmp:
        raws = []
        for raw in sorted((folder / "raw").glob("*.db.gz")):
            db = Path(tmp) / raw.name.removesuffix(".gz")
            with gzip.open(raw) as src, db.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            raws.append(db)
        # a lane that resumed an earlier part's database (four-gpu/seed.sh) brings that part's runs again:
        # the merge copies each run once
        done = merge(target, raws)
    for name, n in done.by_source.items():
        print(f"{name}: {n} runs")
    print(f"{done.already_there} runs merged from an earlier file")
    _repository_relative_models(merged)
    _plan_variants(merged, _variants_from_lane_logs(folder))
    # the raw files stay as they came back; what is published follows this release's accounting rule
    redone = recompute(target)
    print(
        f"recomputed {redone.trials} trials from their traces ({redone.without_trace} without one kept); "
        f"largest change of a measured window energy: {redone.largest_change:.2%}"
    )
    files = build_report(merged, folder / "report")
    print(f"report: {files.html}")


def _repository_relative_models(db: Path) -> None:
    """Raw databases not yet passed through scrub_paths.py name model folders with the GPU machine's
    absolute path; the merged database names them as scrub_paths.py does."""
    conn = sqlite3.connect(db)
    with conn:
        for run_id, model, config in conn.execute("SELECT id, model, config_json FROM runs").fetchall():
            conn.execute(
                "UPDATE runs SET model = ?, config_json = ? WHERE id = ?",
                (scrub(model, WORK_DIRS), scrub(config, WORK_DIRS), run_id),
            )
    conn.close()


# a row of `joulebench sweep --dry-run`'s table: engine[:variant] model workload device tp setup repeats
# estimate from key state
DRY_RUN_ROW = re.compile(r"^(\S+)\s+\S+\s+\S+\s+\S+\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+([0-9a-f]{16})\s+\S+\s*$")


def _variants_from_lane_logs(folder: Path) -> dict[str, str]:
    """Sweep key -> the plan entry's variant, as the lanes' dry-run tables printed them."""
    out = {}
    for log in sorted((folder / "raw").glob("*lane-logs.txt")):
        for line in log.read_text().splitlines():
            m = DRY_RUN_ROW.match(line)
            if m and ":" in m.group(1):
                out[m.group(2)] = m.group(1).split(":", 1)[1]
    return out


def _plan_variants(db: Path, variants: dict[str, str]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute(
            "SELECT id, sweep_key, config_json FROM runs WHERE sweep_key IS NOT NULL"
        ).fetchall()
        for run_id, key, text in rows:
            config = json.loads(text)
            if config.get("label") or key not in variants:
                continue
            config["label"] = variants[key]
            conn.execute("UPDATE runs SET config_json = ? WHERE id = ?", (json.dumps(config), run_id))
            print(f"run {run_id}: label {variants[key]!r} from the lane logs' dry-run table ({key})")
    conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

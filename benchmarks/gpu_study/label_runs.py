"""Give the runs of part 2 the plan variant they ran as, in the raw databases, in place:

    python benchmarks/gpu_study/label_runs.py docs/results/h100x4-2026-11-26

Part 2 ran before a sweep stored its plan entry's ``variant`` as the run's label, so its raw databases
hold ``transformers`` where the plan said ``transformers:eager``; in a report that makes one plan entry
two engines. The lanes' own dry-run tables (``raw/*lane-logs.txt``) name each cell's sweep key beside its
``engine:variant``; this writes that variant into the run's configuration (``config_json.label``), as a
sweep does now. Only runs without a label are touched; no measured value changes. Run once on the
published folder, so that ``joulebench db merge`` of the raw files alone gives the published report.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

from scrub_paths import rewrite_in_place  # beside this script

# a row of `joulebench sweep --dry-run`'s table: engine[:variant] model workload device tp setup repeats
# estimate from key state
DRY_RUN_ROW = re.compile(r"^(\S+)\s+\S+\s+\S+\s+\S+\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+([0-9a-f]{16})\s+\S+\s*$")


def variants_from_lane_logs(folder: Path) -> dict[str, str]:
    """Sweep key -> the plan entry's variant, as the lanes' dry-run tables printed them."""
    out = {}
    for log in sorted((folder / "raw").glob("*lane-logs.txt")):
        for line in log.read_text().splitlines():
            m = DRY_RUN_ROW.match(line)
            if m and ":" in m.group(1):
                out[m.group(2)] = m.group(1).split(":", 1)[1]
    return out


def label(path: Path, variants: dict[str, str]) -> int:
    def change(conn: sqlite3.Connection) -> int:
        changed = 0
        rows = conn.execute("SELECT id, sweep_key, config_json FROM runs WHERE sweep_key IS NOT NULL")
        for run_id, key, text in rows.fetchall():
            config = json.loads(text)
            if config.get("label") or key not in variants:
                continue
            config["label"] = variants[key]
            conn.execute("UPDATE runs SET config_json = ? WHERE id = ?", (json.dumps(config), run_id))
            print(f"{path.name}: run {run_id}: label {variants[key]!r} ({key})")
            changed += 1
        return changed

    return rewrite_in_place(path, change)


def main(folders: list[str]) -> int:
    if not folders:
        print("usage: label_runs.py RESULTS_FOLDER...", file=sys.stderr)
        return 2
    for folder in map(Path, folders):
        variants = variants_from_lane_logs(folder)
        for path in sorted(folder.glob("raw/*.db.gz")):
            print(f"{path}: {label(path, variants)} runs labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

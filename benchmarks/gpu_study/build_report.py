"""Merge the raw result databases of a GPU study folder and build its report.

    python benchmarks/gpu_study/build_report.py docs/results/h200-2026-11-26

Reads every ``raw/*.db.gz`` in the folder (each a database written by ``run_part.sh`` or
``joulebench run`` on the GPU machine, gzip-compressed as it came back: per-token timestamps compress
50x), merges their runs into ``study.db`` with the same writer the Ray executor uses, and writes the
HTML report, figures and exports into ``report/``.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from scrub_paths import WORK_DIRS, scrub  # beside this script

from joulebench.report.build import build_report
from joulebench.store.db import ResultsDB
from joulebench.sweep.transfer import export_runs, import_runs


def main(folder: Path) -> None:
    merged = folder / "study.db"
    merged.unlink(missing_ok=True)
    target = ResultsDB(merged)
    for raw in sorted((folder / "raw").glob("*.db.gz")):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "raw.db"
            with gzip.open(raw) as src, db.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            ids = import_runs(target, export_runs(ResultsDB(db)))
        print(f"{raw.name}: runs {ids}")
    _repository_relative_models(merged)
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


if __name__ == "__main__":
    main(Path(sys.argv[1]))

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
    """Model folders made by run_part.sh are recorded with the GPU machine's absolute path; the published
    report names them relative to the repository, where run_part.sh puts them."""
    conn = sqlite3.connect(db)
    with conn:
        for run_id, model, config in conn.execute("SELECT id, model, config_json FROM runs").fetchall():
            marker = model.find("benchmarks/gpu_study/models/")
            if model.startswith("/") and marker > 0:
                relative = model[marker:]
                conn.execute(
                    "UPDATE runs SET model = ?, config_json = ? WHERE id = ?",
                    (relative, config.replace(model, relative), run_id),
                )
    conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Make the GPU machine's absolute paths in a results folder repository-relative, in place:

    python benchmarks/gpu_study/scrub_paths.py docs/results/h100x4-2026-11-26

A run records the model folder as the machine saw it (``/some/checkout/benchmarks/gpu_study/models/...``)
and the lane logs name the lanes' work folder. Published raw data keeps every measured value and names
those as ``benchmarks/gpu_study/models/...`` and ``WORK/...``. Rewrites the text columns of
``raw/*.db.gz`` and ``superseded/*.db.gz`` and every ``*.log`` / ``*.txt`` beside them; reports nothing
else, changes no number.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_PREFIX = re.compile(r"(?<![\w.])/(?:[^\s/\"',]+/)+?(?=benchmarks/|src/joulebench/)")
WORK_DIRS = ("/root/jb", "/root/study")  # where parts 2 and 1 kept their databases on the GPU machine
TEXT_COLUMNS = {"runs": ("model", "config_json", "environment_json"), "trials": ("details_json", "error")}


def scrub(text: str, work_dirs: tuple[str, ...]) -> str:
    text = REPO_PREFIX.sub("", text)
    for work in work_dirs:
        text = text.replace(work.rstrip("/") + "/", "WORK/")
    return text


def rewrite_in_place(path: Path, change: Callable[[sqlite3.Connection], int]) -> int:
    """Run ``change`` on the gzip-compressed database ``path`` and write it back if it changed anything;
    return what ``change`` counted."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "raw.db"
        with gzip.open(path) as src, db.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        conn = sqlite3.connect(db)
        with conn:
            changed = change(conn)
        conn.execute("VACUUM")
        conn.close()
        if changed:
            with db.open("rb") as src, gzip.open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return changed


def scrub_db(path: Path, work_dirs: tuple[str, ...]) -> int:
    def change(conn: sqlite3.Connection) -> int:
        changed = 0
        for table, columns in TEXT_COLUMNS.items():
            for column in columns:
                query = f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL"
                for row_id, value in conn.execute(query).fetchall():
                    new = scrub(value, work_dirs)
                    if new != value:
                        conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (new, row_id))
                        changed += 1
        return changed

    return rewrite_in_place(path, change)


def main(folders: list[str]) -> int:
    if not folders:
        print("usage: scrub_paths.py RESULTS_FOLDER...", file=sys.stderr)
        return 2
    work_dirs = WORK_DIRS
    for folder in map(Path, folders):
        for path in sorted([*folder.glob("raw/*.db.gz"), *folder.glob("superseded/*.db.gz")]):
            print(f"{path}: {scrub_db(path, work_dirs)} values")
        for path in sorted([*folder.glob("*/*.log"), *folder.glob("*/*.txt")]):
            text = path.read_text()
            new = scrub(text, work_dirs)
            if new != text:
                path.write_text(new)
            print(f"{path}: {'rewritten' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Reading records from JSON, JSON Lines and Parquet files, each paired with where it came from
("line 7", "record 12", "row 3"), so that a malformed record can be reported precisely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joulebench.errors import DatasetError, require

SUFFIXES = (".json", ".jsonl", ".parquet")


def read_records(path: Path) -> list[tuple[str, Any]]:
    """All records of a ``.json`` (one array), ``.jsonl`` (one object a line) or ``.parquet`` file."""
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DatasetError(f"{path}: unsupported dataset file type {suffix!r} (use .json, .jsonl or .parquet)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    # JSON Lines are separated by "\n" only: str.splitlines() would also split inside a string at the
    # U+2028, U+2029 or U+0085 that JSON allows unescaped (and that ensure_ascii=False writes).
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path.name} line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path.name} line {number}: invalid JSON ({exc.msg})") from exc
        except RecursionError:
            raise DatasetError(f"{path.name} line {number}: JSON nested too deeply to be a record") from None
    if not records:
        raise DatasetError(f"{path}: no records")
    return records


def _read_json(path: Path) -> list[tuple[str, Any]]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path.name} line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    except RecursionError:
        raise DatasetError(f"{path.name}: JSON nested too deeply to be a list of records") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    if not data:
        raise DatasetError(f"{path}: no records")
    return [(f"{path.name} record {i}", r) for i, r in enumerate(data)]


def _read_parquet(path: Path) -> list[tuple[str, Any]]:
    pq = require("pyarrow.parquet", extra="datasets", package="pyarrow")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    if not rows:
        raise DatasetError(f"{path}: no records")
    return [(f"{path.name} row {i}", r) for i, r in enumerate(rows)]

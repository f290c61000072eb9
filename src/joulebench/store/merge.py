"""Databases of several machines (one per GPU, one per node, one per day) merged into one, for one report.

Each run is copied whole (its trials, windows, requests and trace) through the store's own writers and
keeps every measured value, its times and the joulebench version that measured it. Its environment gains
``merged_from``: the source database's file name and the run's id there (never the source's path, which
would publish a machine's layout). The machine, its GPUs' UUIDs and driver are already in the
environment. A run already in the target (the same host, start time and configuration) is not copied
again, so merging twice, or merging a database into a merge of it, adds nothing. A source is read from
a private copy and never written (an older schema is brought up to date in the copy); it may be
gzip-compressed (``.db.gz``, as results come back from a machine), and is then named without the
``.gz``. The cards' `joulebench roofline` rows come along with their traces, each once.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joulebench.errors import StoreError, UsageError
from joulebench.store.db import ResultsDB
from joulebench.store.rows import RooflineRow
from joulebench.store.transfer import export_runs, import_runs


@dataclass(frozen=True)
class Merged:
    copied: int
    already_there: int
    by_source: dict[str, int]  # file name -> runs copied from it


def _identity(run: dict[str, Any]) -> str:
    """What makes a run itself: its host and start, and everything it was asked to do."""
    env = run.get("environment") or {}
    keys = ("engine", "model", "workload", "batch_size", "output_tokens", "length_mode", "device",
            "tensor_parallel", "sweep_key", "config")  # fmt: skip
    what = {k: run.get(k) for k in keys}
    return json.dumps([env.get("hostname"), round(float(run["created_unix_s"]), 6), what], sort_keys=True,
                      default=str)  # fmt: skip


def merge(target: ResultsDB, sources: list[Path]) -> Merged:
    """Copy every run of each source database into ``target``."""
    seen = {_identity(r) for r in target.runs()}
    copied = skipped = 0
    by_source: dict[str, int] = {}
    for given in sources:
        with readable(given) as path, ResultsDB(path) as source:
            exported = export_runs(source)
            ids = {id(e): r["id"] for e, r in zip(exported, source.runs(), strict=True)}
            roofline = source.roofline()
            traces = [source.roofline_trace_bytes(r["id"]) for r in roofline]
        _copy_roofline(target, roofline, traces)
        fresh = []
        for e in exported:
            key = _identity(e["run"])
            if key in seen:
                skipped += 1
                continue
            seen.add(key)
            env = dict(e["run"].get("environment") or {})
            # the first origin is kept: a merge of merges still names the database that measured it
            env.setdefault("merged_from", {"database": path.name, "run_id": ids[id(e)]})
            fresh.append({**e, "run": {**e["run"], "environment": env}})
        import_runs(target, fresh)
        by_source[path.name] = by_source.get(path.name, 0) + len(fresh)
        copied += len(fresh)
    return Merged(copied, skipped, by_source)


def _copy_roofline(target: ResultsDB, rows: list[dict[str, Any]], traces: list[bytes | None]) -> None:
    """The cards' roofline rows with their traces, each once (the same host, card, kernel and span is the
    same measurement)."""

    def key(r: dict[str, Any]) -> tuple[object, ...]:
        return (r["host"], r["device_uuid"] or r["device"], r["kernel"], round(float(r["start_s"]), 6))

    have = {key(r) for r in target.roofline()}
    fresh = [(r, t) for r, t in zip(rows, traces, strict=True) if key(r) not in have]
    target.add_roofline(
        [
            RooflineRow(
                **{
                    **{k: r[k] for k in RooflineRow.__dataclass_fields__ if k in r},
                    "flags": tuple(f for f in (r["flags"] or "").split(",") if f),
                    "environment": r.get("environment") or {},
                }
            )
            for r, _ in fresh
        ],
        [t for _, t in fresh],
    )


@contextmanager
def readable(path: Path) -> Iterator[Path]:
    """A private copy of the database at ``path``, which lasts as long as the context; a gzip-compressed
    one is decompressed into it. The source is only read: an older schema is brought up to date in the
    copy, and a source in a read-only folder merges as well. Errors name ``path``, not the copy."""
    with tempfile.TemporaryDirectory(prefix="joulebench-merge-") as tmp:
        copy = Path(tmp) / path.name.removesuffix(".gz")
        if path.suffix == ".gz":
            try:
                with gzip.open(path) as src, copy.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; EOFError: cut short
                raise UsageError(f"{path}: not a gzip-compressed database ({exc})") from None
        else:
            try:
                _snapshot(path, copy)
            except OSError as exc:
                raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        try:
            yield copy
        except StoreError as exc:
            raise StoreError(str(exc).replace(str(copy), str(path))) from None


def _snapshot(path: Path, copy: Path) -> None:
    """``path`` as one consistent state in the new file ``copy``. A database with a write-ahead log beside
    it (a writer has it open, or was killed) is read through SQLite's backup from a read-only connection,
    which sees the log's committed pages; one without is a closed, whole file and is copied as it is, so
    that no file is made beside it. Where SQLite cannot open it read-only (a folder it may not write its
    shared-memory file to), both files are copied and SQLite recovers the log in the copy."""
    wal = Path(f"{path}-wal")
    if wal.exists():
        try:
            with (
                closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as source,
                closing(sqlite3.connect(copy)) as target,
            ):
                source.backup(target)
            return
        except sqlite3.DatabaseError:
            copy.unlink(missing_ok=True)
        shutil.copyfile(wal, f"{copy}-wal")
    shutil.copyfile(path, copy)

"""The results database as pandas DataFrames, read-only, selected by a run filter.

The report and the advisor read the database through this module only. It opens SQLite with
``mode=ro`` so that a report never changes (or locks for writing) a database a run is still filling.

Run filters are ``key=value`` pairs joined by commas, e.g. ``engine=vllm,model=llama-3.2-1b,id=3..7``
(see docs/report.md): ``|`` separates alternatives, ``*`` and ``?`` are wildcards in text values and
``A..B`` is an inclusive range in number values.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.errors import StoreError, UsageError, require
from joulebench.store.schema import DDL, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DB_PATH = Path("joulebench.db")

# Columns of `runs` a filter may name; "model" also matches model_label.
TEXT_KEYS: tuple[str, ...] = ("engine", "engine_version", "model", "model_label", "workload", "length_mode")
TEXT_KEYS += ("device", "status", "sweep_key")
NUMBER_KEYS = ("id", "batch_size", "output_tokens", "tensor_parallel")
FILTER_KEYS = TEXT_KEYS + NUMBER_KEYS


@dataclass(frozen=True)
class Frames:
    """The selected runs and every row that belongs to them, one DataFrame per table."""

    runs: pd.DataFrame
    trials: pd.DataFrame
    stage_energy: pd.DataFrame
    requests: pd.DataFrame
    #: every `joulebench roofline` row of the database (cards, not runs: never filtered); None before schema 3
    roofline: pd.DataFrame | None = None


@dataclass(frozen=True)
class RunFilter:
    """A parsed ``--runs`` filter: for each key, the alternatives any of which a run must match."""

    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __str__(self) -> str:
        return ",".join(f"{k}={'|'.join(v)}" for k, v in self.terms)

    def matches(self, run: dict[str, object]) -> bool:
        return all(any(_match(key, alt, run) for alt in alts) for key, alts in self.terms)


def parse_run_filter(text: str | None) -> RunFilter:
    """Parse ``key=value[,key=value...]``; a malformed filter or an unknown key is a UsageError."""
    if text is None or not text.strip():
        return RunFilter()
    terms: list[tuple[str, tuple[str, ...]]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(
                f"bad run filter {part.strip()!r}: expected key=value (e.g. engine=vllm,id=3..7)"
            )
        if key not in FILTER_KEYS:
            raise UsageError(f"unknown run filter key {key!r}; known keys: {', '.join(FILTER_KEYS)}")
        alts = tuple(a.strip() for a in value.split("|"))
        if key in NUMBER_KEYS:
            for alt in alts:
                _number_range(key, alt)
        terms.append((key, alts))
    return RunFilter(tuple(terms))


def _number_range(key: str, alt: str) -> tuple[float, float]:
    lo, dots, hi = alt.partition("..")
    try:
        low = float(lo) if lo.strip() else float("-inf")
        high = float(hi) if hi.strip() else float("inf")
        if not dots:
            high = low
    except ValueError:
        raise UsageError(f"bad value {alt!r} for {key}: expected a number or a range like 3..7") from None
    return low, high


def _match(key: str, alt: str, run: dict[str, object]) -> bool:
    if key in NUMBER_KEYS:
        low, high = _number_range(key, alt)
        value = run.get(key)
        return value is not None and low <= float(value) <= high  # type: ignore[arg-type]
    fields = ("model", "model_label") if key == "model" else (key,)
    return any(run.get(f) is not None and fnmatch.fnmatchcase(str(run[f]), alt) for f in fields)


def connect_readonly(db_path: str | Path) -> sqlite3.Connection:
    """Open the database read-only after checking it exists and its schema is one this version reads."""
    path = Path(db_path)
    if not path.is_file():
        raise StoreError(f"no results database at {path}: run `joulebench run` first or pass --db PATH")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a joulebench results database ({exc})") from None
    if "meta" not in tables or "runs" not in tables:
        conn.close()
        raise StoreError(f"{path} is not a joulebench results database (no runs table)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row and str(row[0]).isdigit() else None
    if version is None or version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{path} has schema version {row[0] if row else 'unknown'}, this joulebench reads up to "
            f"{SCHEMA_VERSION}: upgrade joulebench to read it"
        )
    missing = _missing(conn)
    if missing:
        conn.close()
        raise StoreError(f"{path} is not a whole joulebench results database: it lacks {', '.join(missing)}")
    return conn


#: columns that migrations added: a database written before them is read without them
_ADDED_COLUMNS = {
    ("stage_energy", "uncertainty_j"),
    *(("requests", c) for c in ("submit_s", "first_token_s", "finish_s", "energy_j", "energy_estimated")),
}


#: tables that migrations added: a database written before them is read as if they were empty
_ADDED_TABLES = {"roofline", "roofline_traces"}


def _missing(conn: sqlite3.Connection) -> list[str]:
    """The tables and columns of the schema (store/schema.py) that this database lacks."""
    reference = sqlite3.connect(":memory:")
    try:
        reference.executescript(DDL)
        wanted = {
            table: [c[1] for c in reference.execute(f"PRAGMA table_info({table})")]
            for (table,) in reference.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        reference.close()
    missing: list[str] = []
    for table, columns in wanted.items():
        have = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            if table not in _ADDED_TABLES:
                missing.append(f"table {table}")
            continue
        missing += [f"{table}.{c}" for c in columns if c not in have and (table, c) not in _ADDED_COLUMNS]
    return missing


def load_frames(db_path: str | Path, runs: RunFilter | str | None = None) -> Frames:
    """Read the runs selected by ``runs`` (a filter string or a parsed :class:`RunFilter`) and their rows.

    An empty database or a filter that matches no run is a :class:`UsageError` naming what was asked.
    """
    pd = require("pandas", extra="report")
    run_filter = runs if isinstance(runs, RunFilter) else parse_run_filter(runs)
    with closing(connect_readonly(db_path)) as conn:
        all_runs = pd.read_sql_query("SELECT * FROM runs ORDER BY id", conn)
        if all_runs.empty:
            raise StoreError(f"{db_path} holds no runs yet: run `joulebench run` first")
        keep = [run_filter.matches(r) for r in all_runs.to_dict("records")]
        selected = all_runs[keep].reset_index(drop=True)
        if selected.empty:
            raise UsageError(f"no run in {db_path} matches --runs {run_filter}")
        run_ids = [int(i) for i in selected["id"]]
        trials = _read_in(pd, conn, "trials", "run_id", run_ids)
        trial_ids = [int(i) for i in trials["id"]]
        stage_energy = _read_in(pd, conn, "stage_energy", "trial_id", trial_ids)
        requests = _read_in(pd, conn, "requests", "trial_id", trial_ids)
        roofline = None
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'roofline'").fetchone():
            roofline = pd.read_sql_query("SELECT * FROM roofline ORDER BY id", conn)
    return Frames(
        runs=selected, trials=trials, stage_energy=stage_energy, requests=requests, roofline=roofline
    )


def _read_in(pd: object, conn: sqlite3.Connection, table: str, column: str, ids: list[int]) -> pd.DataFrame:
    # A temporary table keeps the query valid for any number of ids (SQLite caps bound parameters).
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _ids (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM _ids")
    conn.executemany("INSERT INTO _ids VALUES (?)", [(i,) for i in ids])
    query = f"SELECT t.* FROM {table} t JOIN _ids ON t.{column} = _ids.id ORDER BY t.id"
    return pd.read_sql_query(query, conn)  # type: ignore[attr-defined]


def load_trace(db_path: str | Path, trial_id: int) -> list[dict[str, object]]:
    """The readings of one trial's trace (gzip JSONL), oldest first; [] when the trial has no trace."""
    import gzip
    import json

    with closing(connect_readonly(db_path)) as conn:
        row = conn.execute("SELECT format, data FROM traces WHERE trial_id = ?", (trial_id,)).fetchone()
    if row is None:
        return []
    fmt, data = row
    if fmt != "jsonl.gz":
        raise StoreError(f"trace of trial {trial_id} has format {fmt!r}; this joulebench reads jsonl.gz")
    records = []
    for line in gzip.decompress(data).decode().splitlines():
        obj = json.loads(line) if line.strip() else None
        # Only readings carry t_s; a header or metadata line is skipped rather than plotted.
        if isinstance(obj, dict) and isinstance(obj.get("t_s"), (int, float)):
            records.append(obj)
    return sorted(records, key=_t_s)


def _t_s(record: dict[str, object]) -> float:
    return float(record["t_s"])  # type: ignore[arg-type]


__all__: list[str] = [
    "DEFAULT_DB_PATH",
    "FILTER_KEYS",
    "Frames",
    "RunFilter",
    "connect_readonly",
    "load_frames",
    "load_trace",
    "parse_run_filter",
]

"""The results database: the runner's writers and simple readers over SQLite.

Durability: WAL journal, ``synchronous=FULL``, and one transaction per finished trial (its trial row,
stage rows, request rows and trace together), so Ctrl-C or a crash between two trials leaves a consistent
database holding every finished trial. Readers return plain dicts; ``*_json`` columns come back decoded
under the name without the suffix (``config``, ``environment``, ``details``, ``itl_s``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from joulebench.errors import StoreError, UsageError
from joulebench.store.migrate import check_usable, prepare
from joulebench.store.redact import redact, scrub
from joulebench.store.rows import RequestRow, RooflineRow, StageEnergyRow, TrialRow, stored_itl

DEFAULT_DB = "joulebench.db"
#: How long one attempt waits for another process's write lock before joulebench says it is waiting;
#: ``JOULEBENCH_DB_BUSY_S`` sets it (seconds).
BUSY_ENV = "JOULEBENCH_DB_BUSY_S"
BUSY_S = 30.0
#: How long a write waits in all before it gives up: a finished trial is not dropped for a report that
#: reads for minutes, nor kept waiting on a process that never lets go.
MAX_WAIT_S = 3600.0
RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted")
_RUN_FILTER_COLUMNS = (
    "id",
    "engine",
    "engine_version",
    "model",
    "model_label",
    "workload",
    "batch_size",
    "output_tokens",
    "length_mode",
    "device",
    "tensor_parallel",
    "status",
    "sweep_key",
)
_RUN_UPDATABLE = ("engine_version", "model_label", "environment_json", "config_json")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False, separators=(",", ":"), sort_keys=True)


def _busy_s() -> float:
    raw = os.environ.get(BUSY_ENV)
    try:
        value = float(raw) if raw else BUSY_S
    except ValueError:
        raise UsageError(f"{BUSY_ENV}={raw!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{BUSY_ENV} must be a positive number of seconds, got {raw}")
    return value


def _create_owner_only(path: Path) -> bool:
    """Create an empty database file readable by its owner only (SQLite gives its WAL and shared-memory
    files the same mode); False when it exists already."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(f"--db {path} cannot be created ({exc.strerror}): is its folder writable?") from None
    return True


def _record(value: Any) -> str:
    """A JSON column's text: secrets redacted (store/redact.py), non-finite numbers as null."""
    return _json(_clean(redact(value)))


def _clean(value: Any) -> Any:
    # SQLite stores NaN as NULL anyway; make that explicit so JSON and REAL columns agree.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _insert_stages(conn: sqlite3.Connection, trial_id: int, stages: Sequence[StageEnergyRow]) -> None:
    conn.executemany(
        "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j,"
        " avg_power_w, peak_power_w, idle_power_w, above_idle_energy_j, method, estimated, flags,"
        " uncertainty_j) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                trial_id,
                s.stage,
                s.component,
                s.device,
                s.start_s,
                s.end_s,
                _clean(s.energy_j),
                _clean(s.avg_power_w),
                _clean(s.peak_power_w),
                _clean(s.idle_power_w),
                _clean(s.above_idle_energy_j),
                s.method,
                int(s.estimated),
                ",".join(s.flags),
                _clean(s.uncertainty_j),
            )
            for s in stages
        ],
    )


class ResultsDB:
    """``ResultsDB(path)`` opens (creating or migrating) a results database; use it as a context manager."""

    def __init__(self, path: str | Path = DEFAULT_DB, on_busy: Callable[[str], None] | None = None) -> None:
        from joulebench import __version__

        self.path = Path(path)
        #: told, about every ``BUSY_S``, that a write is waiting for another process's lock
        self.on_busy = on_busy
        self.busy_s = _busy_s()
        if self.path.is_dir():
            raise StoreError(f"--db {self.path} is a directory, not a database file")
        if not self.path.parent.exists():
            raise StoreError(f"--db {self.path}: folder {self.path.parent} does not exist")
        created = _create_owner_only(self.path)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_s)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} cannot be opened ({exc})") from None
        try:
            self._conn.row_factory = sqlite3.Row
            # a file that is not ours, or is too new, is refused before anything is written to it
            check_usable(self._conn, self.path)
            self._conn.execute("PRAGMA foreign_keys = ON")
            # a new file another process holds locked (it is creating the same database): switching to
            # WAL needs the file to itself, so it waits as a write does
            mode = self._waiting("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":  # pragma: no cover - an exotic file system
                raise StoreError(f"{self.path}: cannot use WAL journaling here ({mode and mode[0]})")
            self._conn.execute("PRAGMA synchronous = FULL")
            self.schema_version = prepare(self._conn, self.path, __version__, begin=self._begin)
        except sqlite3.OperationalError as exc:
            self._abandon(created)
            locked = "locked" in str(exc)
            why = "another process holds its write lock" if locked else "a read-only file or folder?"
            raise StoreError(f"{self.path} cannot be written ({exc}): {why}") from None
        except BaseException:
            self._abandon(created)
            raise

    def _abandon(self, created: bool) -> None:
        self._conn.close()
        if created:  # leave no empty file of ours behind
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- life cycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for as long as another process holds the write lock (up to
        :data:`MAX_WAIT_S`), and saying so: a finished trial is never lost to a busy database."""
        self._waiting("BEGIN IMMEDIATE")

    def _waiting(self, statement: str) -> sqlite3.Cursor:
        """``statement``, tried again each busy timeout while another process holds the lock it needs."""
        waited = 0.0
        while True:
            started = time.monotonic()
            try:
                return self._conn.execute(statement)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                waited += time.monotonic() - started
                if waited >= MAX_WAIT_S:
                    raise StoreError(
                        f"{self.path} stayed locked by another process for {waited:.0f} s; gave up writing"
                    ) from None
                if self.on_busy is not None:
                    self.on_busy(
                        f"{self.path} is locked by another process (a report, a sweep, sqlite3?); "
                        f"waited {waited:.0f} s, waiting on (up to {MAX_WAIT_S / 60:.0f} min)"
                    )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._begin()
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- writers ------------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        engine: str,
        model: str,
        workload: str,
        batch_size: int,
        output_tokens: int,
        length_mode: str,
        device: str,
        config: Mapping[str, Any],
        environment: Mapping[str, Any],
        tensor_parallel: int = 1,
        engine_version: str | None = None,
        model_label: str | None = None,
        sweep_key: str | None = None,
        created_unix_s: float | None = None,
        joulebench_version: str | None = None,
    ) -> int:
        """Insert a run with status ``running``; returns its id. ``created_unix_s`` and
        ``joulebench_version`` default to now and this version; a run moved from another database keeps
        its own."""
        from joulebench import __version__

        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (created_unix_s, status, engine, engine_version, model, model_label,"
                " workload, batch_size, output_tokens, length_mode, device, tensor_parallel,"
                " joulebench_version, sweep_key, config_json, environment_json)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time() if created_unix_s is None else created_unix_s,
                    engine,
                    engine_version,
                    model,
                    model_label,
                    workload,
                    batch_size,
                    output_tokens,
                    length_mode,
                    device,
                    tensor_parallel,
                    joulebench_version or __version__,
                    sweep_key,
                    _record(config),
                    _record(environment),
                ),
            )
            return int(cur.lastrowid or 0)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Change ``engine_version``, ``model_label``, ``environment`` or ``config`` of a run."""
        sets: dict[str, Any] = {}
        for key, value in fields.items():
            column = f"{key}_json" if key in ("environment", "config") else key
            if column not in _RUN_UPDATABLE:
                raise ValueError(f"runs.{key} cannot be updated")
            sets[column] = _record(value) if column.endswith("_json") else value
        if not sets:
            return
        assignments = ", ".join(f"{k} = ?" for k in sets)
        with self._transaction() as c:
            c.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*sets.values(), run_id))

    def finish_run(self, run_id: int, status: str, finished_unix_s: float | None = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        finished = time.time() if finished_unix_s is None else finished_unix_s
        with self._transaction() as c:
            c.execute(
                "UPDATE runs SET status = ?, finished_unix_s = ? WHERE id = ?", (status, finished, run_id)
            )

    def add_trial(
        self,
        run_id: int,
        trial: TrialRow,
        stages: Sequence[StageEnergyRow] = (),
        requests: Sequence[RequestRow] = (),
        trace_jsonl_gz: bytes | None = None,
    ) -> int:
        """Write one finished (or failed) trial with everything that belongs to it, atomically."""
        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO trials (run_id, kind, repeat_index, status, error, started_unix_s, duration_s,"
                " cache_state, compile_cache, n_requests, prompt_tokens, output_tokens, details_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    trial.kind,
                    trial.repeat_index,
                    trial.status,
                    scrub(trial.error) if trial.error else trial.error,
                    trial.started_unix_s,
                    _clean(trial.duration_s),
                    trial.cache_state,
                    trial.compile_cache,
                    trial.n_requests,
                    trial.prompt_tokens,
                    trial.output_tokens,
                    _record(trial.details),
                ),
            )
            trial_id = int(cur.lastrowid or 0)
            _insert_stages(c, trial_id, stages)
            c.executemany(
                "INSERT INTO requests (trial_id, request_index, prompt_tokens, output_tokens, finish_reason,"
                " ttft_s, tpot_s, e2e_s, itl_json, error, submit_s, first_token_s, finish_s, energy_j,"
                " energy_estimated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        trial_id,
                        r.request_index,
                        r.prompt_tokens,
                        r.output_tokens,
                        r.finish_reason,
                        _clean(r.ttft_s),
                        _clean(r.tpot_s),
                        _clean(r.e2e_s),
                        _json(_clean(stored_itl(r.itl_s))) if r.itl_s else None,  # µs: plenty, 2.5x smaller
                        r.error,
                        _clean(r.submit_s),
                        _clean(r.first_token_s),
                        _clean(r.finish_s),
                        _clean(r.energy_j),
                        None if r.energy_estimated is None else int(r.energy_estimated),
                    )
                    for r in requests
                ],
            )
            if trace_jsonl_gz is not None:
                c.execute("INSERT INTO traces VALUES (?, 'jsonl.gz', ?)", (trial_id, trace_jsonl_gz))
            return trial_id

    def add_roofline(self, rows: Sequence[RooflineRow], traces: Sequence[bytes | None] | None = None) -> None:
        """Write one `joulebench roofline` measurement, all its rows at once, each with the card's readings
        over its window where given (``traces[k]`` for ``rows[k]``: gzip JSONL, as a trial's)."""
        if traces is not None and len(traces) != len(rows):
            raise ValueError(f"{len(traces)} traces for {len(rows)} roofline rows")
        with self._transaction() as c:
            for r, trace in zip(rows, traces or [None] * len(rows), strict=True):
                cursor = c.execute(
                    "INSERT INTO roofline (created_unix_s, host, joulebench_version, device, device_name,"
                    " device_uuid, kernel, unit, dtype, units, start_s, end_s, energy_j, uncertainty_j,"
                    " idle_power_w, above_idle_energy_j, method, flags, environment_json)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.created_unix_s,
                        r.host,
                        r.joulebench_version,
                        r.device,
                        r.device_name,
                        r.device_uuid,
                        r.kernel,
                        r.unit,
                        r.dtype,
                        r.units,
                        r.start_s,
                        r.end_s,
                        r.energy_j,
                        _clean(r.uncertainty_j),
                        _clean(r.idle_power_w),
                        _clean(r.above_idle_energy_j),
                        r.method,
                        ",".join(r.flags),
                        _record(r.environment),
                    ),
                )
                if trace is not None:
                    c.execute(
                        "INSERT INTO roofline_traces VALUES (?, 'jsonl.gz', ?)", (cursor.lastrowid, trace)
                    )

    # -- readers ------------------------------------------------------------------------------------

    def roofline(self) -> list[dict[str, Any]]:
        """Every roofline row, oldest first."""
        return self._rows("SELECT * FROM roofline ORDER BY id", ())

    def runs(self, filter: Mapping[str, Any] | None = None, **where: Any) -> list[dict[str, Any]]:
        """Runs whose columns equal every given value, oldest first: ``db.runs(engine="vllm")``."""
        conditions = {**(filter or {}), **where}
        unknown = sorted(set(conditions) - set(_RUN_FILTER_COLUMNS))
        if unknown:
            raise UsageError(
                f"unknown run filter {', '.join(unknown)}; known: {', '.join(_RUN_FILTER_COLUMNS)}"
            )
        sql = "SELECT * FROM runs"
        if conditions:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in conditions)
        return self._rows(sql + " ORDER BY id", tuple(conditions.values()))

    def run(self, run_id: int) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.path}")
        return rows[0]

    def trials(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return self._rows("SELECT * FROM trials WHERE run_id = ? ORDER BY id", (run_id,))
        return self._rows("SELECT * FROM trials WHERE run_id = ? AND kind = ? ORDER BY id", (run_id, kind))

    def stage_energy(self, trial_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM stage_energy WHERE trial_id = ? ORDER BY id", (trial_id,))

    def requests(self, trial_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM requests WHERE trial_id = ? ORDER BY request_index", (trial_id,))

    def trace(self, trial_id: int) -> list[dict[str, Any]]:
        """The decoded trace lines of a trial ([] when it has none)."""
        row = self._conn.execute("SELECT format, data FROM traces WHERE trial_id = ?", (trial_id,)).fetchone()
        return _trace_lines(row, f"trial {trial_id}")

    def roofline_trace(self, roofline_id: int) -> list[dict[str, Any]]:
        """The decoded trace lines of a roofline row ([] when it has none)."""
        row = self._conn.execute(
            "SELECT format, data FROM roofline_traces WHERE roofline_id = ?", (roofline_id,)
        ).fetchone()
        return _trace_lines(row, f"roofline row {roofline_id}")

    def roofline_trace_bytes(self, roofline_id: int) -> bytes | None:
        """A roofline row's trace as stored (gzip JSONL), for copying it whole."""
        row = self._conn.execute(
            "SELECT data FROM roofline_traces WHERE roofline_id = ?", (roofline_id,)
        ).fetchone()
        return None if row is None else bytes(row["data"])

    def replace_roofline_energy(self, roofline_id: int, energy: Mapping[str, Any]) -> None:
        """Put a roofline row's energy anew (``joulebench db recompute``): ``energy_j``, ``uncertainty_j``,
        ``above_idle_energy_j``, ``method`` and ``flags``."""
        with self._transaction() as c:
            c.execute(
                "UPDATE roofline SET energy_j = ?, uncertainty_j = ?, above_idle_energy_j = ?, method = ?,"
                " flags = ? WHERE id = ?",
                (
                    energy["energy_j"],
                    _clean(energy["uncertainty_j"]),
                    _clean(energy["above_idle_energy_j"]),
                    energy["method"],
                    ",".join(energy["flags"]),
                    roofline_id,
                ),
            )

    def replace_windows(
        self,
        trial_id: int,
        stages: Sequence[StageEnergyRow],
        details: Mapping[str, Any],
        request_energy: Mapping[int, tuple[float | None, bool]] | None = None,
    ) -> None:
        """Put a trial's windows and details anew, with its requests' energy shares by request index when
        given, in one transaction (``joulebench db recompute``)."""
        with self._transaction() as c:
            c.execute("DELETE FROM stage_energy WHERE trial_id = ?", (trial_id,))
            _insert_stages(c, trial_id, stages)
            c.execute("UPDATE trials SET details_json = ? WHERE id = ?", (_record(details), trial_id))
            c.executemany(
                "UPDATE requests SET energy_j = ?, energy_estimated = ?"
                " WHERE trial_id = ? AND request_index = ?",
                [
                    (_clean(e), None if e is None else int(est), trial_id, index)
                    for index, (e, est) in (request_energy or {}).items()
                ],
            )

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        out = []
        for row in self._conn.execute(sql, params):
            d = dict(row)
            for key in [k for k in d if k.endswith("_json")]:
                raw = d.pop(key)
                d["itl_s" if key == "itl_json" else key[: -len("_json")]] = json.loads(raw) if raw else None
            out.append(d)
        return out


def _trace_lines(row: sqlite3.Row | None, owner: str) -> list[dict[str, Any]]:
    import gzip

    if row is None:
        return []
    if row["format"] != "jsonl.gz":
        raise StoreError(f"trace of {owner} has unknown format {row['format']!r}")
    return [json.loads(line) for line in gzip.decompress(row["data"]).decode().splitlines() if line.strip()]

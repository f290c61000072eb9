"""Opening a results database: create it, check its schema version, bring an older one up to date.

A database written by a newer joulebench is refused (:class:`StoreError`, exit 2) rather than misread.
Each schema change adds one step to :data:`MIGRATIONS` (version ``k`` -> ``k + 1``) and bumps
:data:`~joulebench.store.schema.SCHEMA_VERSION`; steps run in one transaction, so a failed migration
leaves the database as it was.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from joulebench.errors import StoreError
from joulebench.store.schema import DDL, SCHEMA_VERSION


def _add_uncertainty(conn: sqlite3.Connection) -> None:
    # rows written before stay NULL ("not stated"); `joulebench db recompute` fills them from the traces
    conn.execute("ALTER TABLE stage_energy ADD COLUMN uncertainty_j REAL")


def _version_3(conn: sqlite3.Connection) -> None:
    _add_request_times_and_energy(conn)
    conn.execute(_create_table("roofline"))


def _add_request_times_and_energy(conn: sqlite3.Connection) -> None:
    for column in ("submit_s REAL", "first_token_s REAL", "finish_s REAL", "energy_j REAL"):
        conn.execute(f"ALTER TABLE requests ADD COLUMN {column}")
    conn.execute("ALTER TABLE requests ADD COLUMN energy_estimated INTEGER")
    # version 2 kept each request's energy share in its trial's details; it moves to the request's row,
    # so that one place holds it (the times were not stored then: those rows keep NULL)
    for trial_id, text in conn.execute(
        "SELECT id, details_json FROM trials WHERE details_json LIKE '%request_energy_j%'"
    ).fetchall():
        details = json.loads(text)
        shares = details.pop("request_energy_j", None)
        estimated = details.pop("request_energy_estimated", None)
        if not isinstance(shares, dict):
            continue
        conn.executemany(
            "UPDATE requests SET energy_j = ?, energy_estimated = ? WHERE trial_id = ? AND request_index = ?",
            [(share, int(bool(estimated)), trial_id, int(index)) for index, share in shares.items()],
        )
        conn.execute("UPDATE trials SET details_json = ? WHERE id = ?", (json.dumps(details), trial_id))


def _add_roofline_traces(conn: sqlite3.Connection) -> None:
    # roofline rows written before keep no trace: `db recompute` leaves them as they were
    conn.execute(_create_table("roofline_traces"))


#: version k -> the step that turns a version-k database into version k + 1
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _add_uncertainty,
    2: _version_3,
    3: _add_roofline_traces,
}


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The stored schema version, ``None`` for an empty database."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise StoreError("not a joulebench results database (no meta table)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise StoreError("not a joulebench results database (no schema version)")
    return int(row[0])


def prepare(
    conn: sqlite3.Connection,
    path: Path,
    joulebench_version: str,
    begin: Callable[[], object],
) -> int:
    """Create the schema in an empty database or migrate an older one; return the version now stored.
    ``begin`` takes the write lock (the store's, which waits for a busy database and says so)."""
    check_usable(conn, path)  # a database that is not ours, or too new, fails before taking the lock
    begin()
    try:
        # read again under the lock: another process (a run creating the database that a report or a test
        # opens at the same moment) may have created or migrated it since
        version = check_usable(conn, path)
        if version is None:
            for statement in _statements(DDL):
                conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('created_by', ?)", (joulebench_version,))
            version = SCHEMA_VERSION
        while version < SCHEMA_VERSION:
            if version not in MIGRATIONS:
                raise StoreError(f"{path} has schema version {version} and no migration to {version + 1}")
            MIGRATIONS[version](conn)
            version += 1
        conn.execute(
            "INSERT INTO meta VALUES ('schema_version', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def check_usable(conn: sqlite3.Connection, path: Path) -> int | None:
    """The schema version of a database this joulebench can use (``None``: empty); :class:`StoreError`
    for a file that is not a joulebench results database, or is newer. Reads only."""
    try:
        version = schema_version(conn)
    except StoreError as exc:
        raise StoreError(f"{path} is {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a joulebench results database ({exc})") from None
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this joulebench's {SCHEMA_VERSION}: "
            "upgrade joulebench or use another --db"
        )
    return version


def _create_table(name: str) -> str:
    """The schema's statement that creates table ``name`` (as it is today: a step that adds a table)."""
    (statement,) = [s for s in _statements(DDL) if s.split("(", 1)[0].split() == [*_CREATE, name]]
    return statement


_CREATE = ("CREATE", "TABLE", "IF", "NOT", "EXISTS")


def _statements(script: str) -> list[str]:
    # executescript() would commit the open transaction; run the DDL statement by statement instead.
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

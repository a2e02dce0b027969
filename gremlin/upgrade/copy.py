"""Copy with transformations: build db_new.sqlite by the same numbered schema steps the store
uses, up to the old database's version; copy every row in one transaction; then apply the
remaining steps (that IS the transformation); check integrity and row counts; fsync.

When the old database's schema is exactly what those steps build (compared with a scratch
database built by them in memory: the usual case), its pages are copied with SQLite's backup
API instead of row by row: the same result, several times faster (bench/bench_upgrade.py).
Otherwise (a schema that drifted, e.g. an unreleased step 1 that changed) rows are copied by
column name, and a column or table of the old that has no place in the new fails the copy.

The old database is only read (ATTACH; one read snapshot for the whole copy). Triggers of the
new schema are dropped while rows are copied (a copy must not fire them) and re-created after;
FTS tables with external content are rebuilt rather than copied.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ..errors import SchemaTooNew
from ..store import STEPS, Step, apply_steps, connect, latest
from ..store.schema import APP_VERSION
from .build import (
    BUILD_PRAGMAS,
    CopyFailed,
    CopyReport,
    Phases,
    _q,
    compare_counts,
    count_rows,
    discard_build,
    finish_build,
    report_build,
    schema_version_of,
)
from .swap import remove_database

__all__ = [
    "CopyFailed",
    "CopyReport",
    "built_by_steps",
    "copy_database",
    "copy_pages",
    "schema_version_of",
]

log = logging.getLogger(__name__)

# Filled by the steps themselves (replaced by the old rows: they keep the history).
HISTORY_TABLES = ("schema_steps", "meta")


def _objects(conn: sqlite3.Connection, schema: str, kind: str) -> dict[str, str]:
    rows = conn.execute(
        f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'"
        " ORDER BY rowid",
        (kind,),
    ).fetchall()
    return {r["name"]: r["sql"] or "" for r in rows}


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r["name"] for r in conn.execute(f"PRAGMA {schema}.table_info({_q(table)})")]


def _virtual(tables: dict[str, str]) -> dict[str, str]:
    return {n: sql for n, sql in tables.items() if sql.upper().startswith("CREATE VIRTUAL TABLE")}


def _hidden_rowid(conn: sqlite3.Connection, schema: str, table: str) -> bool:
    """A rowid table whose rowid is no column of its own (no INTEGER PRIMARY KEY)?"""
    info = conn.execute(f"PRAGMA {schema}.table_info({_q(table)})").fetchall()
    keys = [r for r in info if r["pk"]]
    if len(keys) == 1 and str(keys[0]["type"]).upper() == "INTEGER":
        return False
    try:
        conn.execute(f"SELECT rowid FROM {schema}.{_q(table)} LIMIT 0")
    except sqlite3.OperationalError:  # WITHOUT ROWID
        return False
    return True


def _copy_rows(conn: sqlite3.Connection) -> tuple[dict[str, int], list[str]]:
    """Inside one transaction: every row of old.* into main.*; returns counts and warnings."""
    old_tables = _objects(conn, "old", "table")
    new_tables = _objects(conn, "main", "table")
    virtual = _virtual(new_tables)
    shadow = {t for t in new_tables for v in virtual if t.startswith(v + "_") and t not in virtual}
    rebuild = [v for v, sql in virtual.items() if re.search(r"content\s*=", sql, re.IGNORECASE)]
    triggers = _objects(conn, "main", "trigger")
    for name in triggers:
        conn.execute(f"DROP TRIGGER main.{_q(name)}")
    counts: dict[str, int] = {}
    warnings: list[str] = []
    for table in old_tables:
        if table in shadow or table in rebuild:
            continue
        if table not in new_tables:
            if count_rows(conn, "old", table):
                raise CopyFailed(f"table {table} has rows but the new schema has no such table")
            warnings.append(f"empty table {table} is not in the new schema")
            continue
        old_columns = _columns(conn, "old", table)
        new_columns = set(_columns(conn, "main", table))
        dropped = [c for c in old_columns if c not in new_columns]
        if dropped and count_rows(conn, "old", table):
            raise CopyFailed(
                f"columns {', '.join(dropped)} of {table} have no place in the new one"
            )
        names = ", ".join(_q(c) for c in old_columns if c in new_columns)
        if table in virtual or (
            _hidden_rowid(conn, "old", table) and _hidden_rowid(conn, "main", table)
        ):
            names = f"rowid, {names}"  # kept: `gremlin revert` compares rows by rowid
        if table in HISTORY_TABLES:
            conn.execute(f"DELETE FROM main.{_q(table)}")
        conn.execute(f"INSERT INTO main.{_q(table)} ({names}) SELECT {names} FROM old.{_q(table)}")
        counts[table] = count_rows(conn, "old", table)
        copied = count_rows(conn, "main", table)
        if copied != counts[table]:
            raise CopyFailed(f"{table}: {counts[table]} rows in the old database, {copied} copied")
    if conn.execute("SELECT 1 FROM old.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        conn.execute(
            "INSERT OR REPLACE INTO main.sqlite_sequence SELECT * FROM old.sqlite_sequence"
        )
    for name in rebuild:
        conn.execute(f"INSERT INTO main.{_q(name)}({_q(name)}) VALUES ('rebuild')")
    for sql in triggers.values():
        conn.execute(sql)
    return counts, warnings


def _schema(conn: sqlite3.Connection, schema: str) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        f"SELECT type, name, sql FROM {schema}.sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    )
    return sorted((r[0], r[1], " ".join((r[2] or "").split())) for r in rows)


def built_by_steps(
    conn: sqlite3.Connection, steps: Sequence[Step], upto: int, schema: str = "old"
) -> bool:
    """Is the `schema` database's schema exactly what `steps` up to `upto` build?"""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        apply_steps(scratch, upto=upto, steps=steps)
        return _schema(scratch, "main") == _schema(conn, schema)
    finally:
        scratch.close()


def copy_pages(conn: sqlite3.Connection, src: Path) -> dict[str, int]:
    """The old schema is the steps' own: copy it page by page (SQLite's backup API), then
    compare every table's row count with the old database's, counted in the same read
    snapshot as the pages were copied (the old database may be live: the pre-copy)."""
    old = connect(src)
    try:
        old.execute("BEGIN")  # deferred: the counts start the snapshot the backup then uses
        try:
            tables = _objects(old, "main", "table")
            counts = {table: count_rows(old, "main", table) for table in tables}
            old.backup(conn)
        finally:
            old.execute("ROLLBACK")
    finally:
        old.close()
    compare_counts(conn, counts)
    return counts


def copy_database(
    src: Path,
    dst: Path,
    *,
    steps: Sequence[Step] = STEPS,
    app_version: str = APP_VERSION,
    handover_id: int | None = None,
) -> CopyReport:
    """Build `dst` from `src` (read only) as described above; `dst` is replaced if it exists.

    `dst` is disposable until it is complete: it is built without a journal and without
    syncs (any failure removes it), then checked (PRAGMA integrity_check, the full one),
    switched to WAL, and fsynced once.
    `handover_id`: the copied handover row is marked DONE in the new database (it is the
    record of how this database came to be). Raises CopyFailed; `dst` is then removed.
    """
    phase = Phases()
    remove_database(dst)
    conn = connect(dst)
    try:
        for pragma in BUILD_PRAGMAS:
            conn.execute(pragma)
        conn.execute("ATTACH DATABASE ? AS old", (str(src),))
        from_schema = schema_version_of(conn, "old")
        if from_schema > latest(steps):
            raise SchemaTooNew(str(src), from_schema, latest(steps))
        if built_by_steps(conn, steps, from_schema):
            conn.execute("DETACH DATABASE old")
            counts, warnings, method = copy_pages(conn, src), list[str](), "pages"
        else:
            apply_steps(conn, upto=from_schema, steps=steps, app_version=app_version)
            conn.execute("PRAGMA foreign_keys = OFF")  # rows arrive table by table
            conn.execute("BEGIN")  # deferred: one snapshot of old, the write lock on main only
            try:
                counts, warnings = _copy_rows(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE old")
            method = "rows"
        phase("rows")
        to_schema = finish_build(
            conn,
            dst,
            phase,
            steps=steps,
            app_version=app_version,
            handover_id=handover_id,
            check="integrity_check",
        )
    except BaseException as e:
        discard_build(conn, dst, e)
        raise
    return report_build(from_schema, to_schema, counts, phase, warnings, method, "integrity_check")

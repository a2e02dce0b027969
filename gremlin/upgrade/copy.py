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

import dataclasses
import logging
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import GremlinError, SchemaTooNew
from ..store import STEPS, Step, apply_steps, connect, fsync_file, latest, transaction
from ..store.handover import Stage, set_stage
from ..store.schema import APP_VERSION
from .protocol import UpgradeError
from .swap import close_checkpointed, remove_database

log = logging.getLogger(__name__)

# The new file is disposable until complete: no journal, no syncs, a large page cache.
BUILD_PRAGMAS = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = -262144",  # KiB: 256 MiB at most, only as much as the data needs
    "PRAGMA temp_store = MEMORY",
)

# Filled by the steps themselves (replaced by the old rows: they keep the history).
HISTORY_TABLES = ("schema_steps", "meta")


class CopyFailed(UpgradeError):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"copying the data into the new database failed: {why}",
            hint="Nothing was changed; db_new.sqlite was removed. Report this with the log.",
        )


@dataclasses.dataclass(frozen=True)
class CopyReport:
    from_schema: int
    to_schema: int
    rows: dict[str, int]  # per table, as copied (before the transforming steps)
    seconds: float
    warnings: tuple[str, ...] = ()
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per phase
    method: str = "rows"  # "pages" (backup API, the schema is the steps' own) or "rows"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_version_of(conn: sqlite3.Connection, schema: str) -> int:
    exists = conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'schema_steps'"
    ).fetchone()
    if not exists:
        return 0
    return int(conn.execute(f"SELECT max(step) FROM {schema}.schema_steps").fetchone()[0] or 0)


def _objects(conn: sqlite3.Connection, schema: str, kind: str) -> dict[str, str]:
    rows = conn.execute(
        f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'"
        " ORDER BY rowid",
        (kind,),
    ).fetchall()
    return {r["name"]: r["sql"] or "" for r in rows}


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r["name"] for r in conn.execute(f"PRAGMA {schema}.table_info({_q(table)})")]


def _count(conn: sqlite3.Connection, schema: str, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {schema}.{_q(table)}").fetchone()[0])


def _virtual(tables: dict[str, str]) -> dict[str, str]:
    return {n: sql for n, sql in tables.items() if sql.upper().startswith("CREATE VIRTUAL TABLE")}


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
            if _count(conn, "old", table):
                raise CopyFailed(f"table {table} has rows but the new schema has no such table")
            warnings.append(f"empty table {table} is not in the new schema")
            continue
        old_columns = _columns(conn, "old", table)
        new_columns = set(_columns(conn, "main", table))
        dropped = [c for c in old_columns if c not in new_columns]
        if dropped and _count(conn, "old", table):
            raise CopyFailed(
                f"columns {', '.join(dropped)} of {table} have no place in the new one"
            )
        names = ", ".join(_q(c) for c in old_columns if c in new_columns)
        if table in virtual:
            names = f"rowid, {names}"
        if table in HISTORY_TABLES:
            conn.execute(f"DELETE FROM main.{_q(table)}")
        conn.execute(f"INSERT INTO main.{_q(table)} ({names}) SELECT {names} FROM old.{_q(table)}")
        counts[table] = _count(conn, "old", table)
        copied = _count(conn, "main", table)
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


def built_by_steps(conn: sqlite3.Connection, steps: Sequence[Step], upto: int) -> bool:
    """Is the attached `old` database's schema exactly what `steps` up to `upto` build?"""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        apply_steps(scratch, upto=upto, steps=steps)
        return _schema(scratch, "main") == _schema(conn, "old")
    finally:
        scratch.close()


def _copy_pages(conn: sqlite3.Connection, src: Path) -> dict[str, int]:
    """The old schema is the steps' own: copy it page by page (SQLite's backup API, one read
    snapshot), then compare every table's row count with the old database's."""
    conn.execute("DETACH DATABASE old")
    old = connect(src)
    try:
        old.backup(conn)
    finally:
        old.close()
    conn.execute("ATTACH DATABASE ? AS old", (str(src),))
    counts: dict[str, int] = {}
    for table in _objects(conn, "old", "table"):
        counts[table] = _count(conn, "old", table)
        copied = _count(conn, "main", table)
        if copied != counts[table]:
            raise CopyFailed(f"{table}: {counts[table]} rows in the old database, {copied} copied")
    conn.execute("DETACH DATABASE old")
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
    syncs (any failure removes it), then switched to WAL, checked, and fsynced once.
    `handover_id`: the copied handover row is marked DONE in the new database (it is the
    record of how this database came to be). Raises CopyFailed; `dst` is then removed.
    """
    began = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - began - sum(phases.values())

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
            counts, warnings, method = _copy_pages(conn, src), list[str](), "pages"
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
        conn.execute("PRAGMA foreign_keys = ON")
        apply_steps(conn, steps=steps, app_version=app_version)
        with transaction(conn):
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('app_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (app_version,),
            )
            if handover_id is not None:
                set_stage(conn, handover_id, Stage.DONE, "copied into this database")
        phase("steps")
        check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if check != ["ok"]:
            raise CopyFailed("integrity check: " + "; ".join(check[:5]))
        to_schema = schema_version_of(conn, "main")
        phase("checks")
        conn.close()
        close_checkpointed(connect(dst), dst)  # as the store opens it: in WAL mode
        fsync_file(dst)
    except BaseException as e:
        conn.close()
        remove_database(dst)
        if isinstance(e, Exception) and not isinstance(e, GremlinError):
            raise CopyFailed(f"{type(e).__name__}: {e}") from e
        raise
    phase("fsync")
    for warning in warnings:
        log.warning("copy: %s", warning)
    report = CopyReport(
        from_schema, to_schema, counts, time.monotonic() - began, tuple(warnings), phases, method
    )
    log.info(
        "copied by %s schema=%d->%d rows=%d seconds=%.3f (%s)",
        method,
        from_schema,
        to_schema,
        sum(counts.values()),
        report.seconds,
        " ".join(f"{k}={v:.3f}" for k, v in phases.items()),
    )
    return report

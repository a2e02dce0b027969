"""`gremlin revert SITE [NAME]`: put a set-aside database back, keeping the one it replaces.

Choice: the server must be stopped (a revert usually goes with running the older version's
code, which is started afterwards). The revert is recorded like a handover in the current
database, so CLI writers and `serve` refuse while it runs; both files are checkpointed and
closed before the renames; the current database is set aside as db_<its version>.sqlite.
It reports what was written since the set-aside copy was made, table by table: new rows
(past the restored table's highest rowid), changed rows (same rowid, a column both have
differs: a write since the upgrade, or the upgrade's own transformation of that column) and
deleted rows (back after the revert). Those writes are in the database it sets aside, not in
the one it restores.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sqlite3
import time
from pathlib import Path

from ..errors import AlreadyRunning, NotFound, SiteError
from ..proc import ProcessId, format_since, started_at
from ..store import Site, connect, transaction
from ..store.db import DamagedDatabase
from ..store.handover import Stage, request_handover
from ..store.schema import is_ours
from ..store.server_record import live_server
from .copy import schema_version_of
from .offline import app_version_of, record_stage
from .swap import checkpoint_file, set_aside_databases, set_aside_path, swap_in

log = logging.getLogger(__name__)

# Bookkeeping tables: their differences are not "writes since the upgrade".
BOOKKEEPING = frozenset({"handover", "server", "schema_steps", "meta"})


@dataclasses.dataclass(frozen=True)
class TableDelta:
    table: str
    current_rows: int
    restored_rows: int
    newer_rows: int  # rows of the current database past the restored one's highest rowid
    changed_rows: int = 0  # same rowid in both, a column both have differs
    deleted_rows: int = 0  # rows of the restored database the current one lacks


@dataclasses.dataclass(frozen=True)
class RevertResult:
    restored: Path  # the set-aside file that is db.sqlite now (its former name)
    set_aside: Path  # where the replaced database went
    restored_schema: int
    deltas: tuple[TableDelta, ...]
    damaged: bool = False  # the replaced database could not be read: set aside, not compared

    @property
    def rows_set_aside(self) -> int:
        return sum(d.newer_rows for d in self.deltas)

    @property
    def rows_changed(self) -> int:
        return sum(d.changed_rows for d in self.deltas)

    @property
    def rows_deleted(self) -> int:
        return sum(d.deleted_rows for d in self.deltas)


def choose(site: Site, name: str | None) -> Path:
    """The newest set-aside database, or the one NAME names (file name or version)."""
    candidates = set_aside_databases(site.root)
    if not candidates:
        raise SiteError(
            f"no set-aside database in {site.root} to revert to",
            hint="Set-aside databases are named db_<version>.sqlite; an upgrade makes them.",
        )
    if name is None:
        return candidates[0]
    for path in candidates:
        if name in (path.name, path.stem, path.stem.removeprefix("db_")):
            return path
    raise NotFound(
        f"no set-aside database named {name!r}",
        hint="Choose one of: " + ", ".join(p.name for p in candidates),
    )


def _tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    rows = conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%'"
    )
    return {r[0] for r in rows}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r["name"] for r in conn.execute(f"PRAGMA {schema}.table_info({_q(table)})")]


def _delta(conn: sqlite3.Connection, table: str) -> TableDelta:
    """One table of `main` (current) against `restored` (attached)."""
    q = _q(table)
    now = conn.execute(f"SELECT count(*) FROM main.{q}").fetchone()[0]
    before = conn.execute(f"SELECT count(*) FROM restored.{q}").fetchone()[0]
    try:
        top = conn.execute(f"SELECT max(rowid) FROM restored.{q}").fetchone()[0] or 0
    except sqlite3.OperationalError:  # WITHOUT ROWID: counts are all we have
        return TableDelta(table, now, before, max(0, now - before))
    newer = conn.execute(f"SELECT count(*) FROM main.{q} WHERE rowid > ?", (top,)).fetchone()[0]
    theirs = set(_columns(conn, "restored", table))
    shared = [c for c in _columns(conn, "main", table) if c in theirs]
    same = " AND ".join(f"m.{_q(c)} IS r.{_q(c)}" for c in shared) or "1"
    changed = conn.execute(
        f"SELECT count(*) FROM main.{q} AS m JOIN restored.{q} AS r ON r.rowid = m.rowid"
        f" WHERE NOT ({same})"
    ).fetchone()[0]
    deleted = conn.execute(
        f"SELECT count(*) FROM restored.{q} AS r"
        f" WHERE NOT EXISTS (SELECT 1 FROM main.{q} AS m WHERE m.rowid = r.rowid)"
    ).fetchone()[0]
    return TableDelta(table, now, before, int(newer), int(changed), int(deleted))


def compare(current: Path, restored: Path) -> list[TableDelta]:
    """Per table: rows now, rows in the restored database, new, changed and deleted rows."""
    conn = connect(current)
    try:
        conn.execute("ATTACH DATABASE ? AS restored", (str(restored),))
        theirs = _tables(conn, "restored")
        deltas = []
        for table in sorted(_tables(conn, "main") - BOOKKEEPING):
            if table not in theirs:
                now = conn.execute(f"SELECT count(*) FROM main.{_q(table)}").fetchone()[0]
                deltas.append(TableDelta(table, now, 0, now))
            else:
                deltas.append(_delta(conn, table))
        conn.execute("DETACH DATABASE restored")
    finally:
        conn.close()
    return deltas


def _check_restorable(path: Path) -> int:
    conn = connect(path)
    try:
        if not is_ours(conn):
            raise SiteError(f"{path} is not a contentgremlin database")
        return schema_version_of(conn, "main")
    finally:
        conn.close()


def revert(site: Site, name: str | None = None) -> RevertResult:
    target = choose(site, name)
    restored_schema = _check_restorable(target)
    try:
        conn = connect(site.db)
    except DamagedDatabase:
        return _revert_damaged(site, target, restored_schema)
    try:
        sound = conn.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:
        sound = False
    if not sound:  # its rows cannot be trusted, nor compared
        conn.close()
        return _revert_damaged(site, target, restored_schema)
    try:
        with transaction(conn):
            server = live_server(conn)
            if server is not None:
                running = AlreadyRunning(
                    server.process.pid, format_since(started_at(server.process.pid)), server.bind
                )
                running.hint = f"Stop it first (kill {server.process.pid}): a revert needs that."
                raise running
            handover_id = request_handover(conn, ProcessId.current(), f"revert:{target.name}")
        current_version = app_version_of(conn)
    finally:
        conn.close()
    try:
        deltas = compare(site.db, target)
        record_stage(site.db, handover_id, Stage.RENAMING)
        checkpoint_file(site.db)
        checkpoint_file(target)
        set_aside = set_aside_path(site.root, current_version)
        swap_in(site.db, target, set_aside)
    except BaseException as e:
        if site.db.exists():
            record_stage(site.db, handover_id, Stage.ABORTED, f"{type(e).__name__}: {e}")
        raise
    record_stage(set_aside, handover_id, Stage.DONE, f"set aside by a revert to {target.name}")
    log.info("reverted to %s; the replaced database is kept as %s", target.name, set_aside.name)
    return RevertResult(target, set_aside, restored_schema, tuple(deltas))


def _revert_damaged(site: Site, target: Path, restored_schema: int) -> RevertResult:
    """db.sqlite cannot be read: set it aside (with its -wal and -shm) as
    db.sqlite.damaged-<time>, never a revert candidate, and put `target` in its place. Nothing
    can be compared; whether a server runs is asked of its control socket."""
    if _control_socket_answers(site.control_socket):
        raise SiteError(
            f"{site.db} is damaged and a server still answers on {site.control_socket}",
            hint="Stop the server first: a revert needs that.",
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    damaged = site.root / f"db.sqlite.damaged-{stamp}"
    checkpoint_file(target)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = site.db.with_name(site.db.name + suffix)
        if companion.exists():
            os.rename(companion, damaged.with_name(damaged.name + suffix))
    swap_in(site.db, target, damaged)
    log.warning(
        "db.sqlite was damaged: kept as %s (not compared with the restored database)",
        damaged.name,
    )
    return RevertResult(target, damaged, restored_schema, (), damaged=True)


def _control_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True

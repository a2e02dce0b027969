"""The offline upgrade (no server running): the same copy and rename, without a handover.

Run by `gremlin upgrade SITE` when no server is alive, and by `gremlin serve` on a database of
an older schema. The request is still recorded in the old database's handover table, so CLI
writers refuse while the copy runs; the old database is set aside as db_<version>.sqlite.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path

import trio

from ..errors import AlreadyRunning, SchemaTooNew
from ..proc import ProcessId, format_since, started_at
from ..store import Site, connect, latest, transaction, version_of
from ..store.handover import Stage, request_handover, set_stage
from ..store.schema import APP_VERSION
from ..store.server_record import live_server
from .copy import CopyReport, copy_database
from .swap import checkpoint_file, remove_database, set_aside_path, swap_in

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class UpgradeResult:
    set_aside: Path
    copy: CopyReport  # the copy that became db.sqlite (in a handover: the one in the window)
    old_version: str
    precopy: CopyReport | None = None  # a handover's full copy before the window


def record_stage(db: Path, handover_id: int, stage: Stage, reason: str | None = None) -> None:
    """Record a stage in a database that this process does not otherwise hold open."""
    conn = connect(db)
    try:
        with transaction(conn):
            set_stage(conn, handover_id, stage, reason)
    finally:
        conn.close()


def app_version_of(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()
    return str(row[0]) if row else "unknown"


def finish_swap(site: Site, handover_id: int, old_version: str) -> Path:
    """The old process is gone: set db.sqlite aside, put db_new.sqlite in its place."""
    record_stage(site.db, handover_id, Stage.RENAMING)
    checkpoint_file(site.db)
    set_aside = set_aside_path(site.root, old_version)
    swap_in(site.db, site.db_new, set_aside)
    record_stage(set_aside, handover_id, Stage.DONE, "set aside; the new database serves")
    return set_aside


def upgrade_offline(site: Site) -> UpgradeResult:
    """Copy db.sqlite into a new database by this version's steps, and swap it in."""
    me = ProcessId.current()
    conn = connect(site.db)
    try:
        found = version_of(conn)
        if found > latest():
            raise SchemaTooNew(str(site.db), found, latest())
        with transaction(conn):
            server = live_server(conn)
            if server is not None:
                raise AlreadyRunning(
                    server.process.pid, format_since(started_at(server.process.pid)), server.bind
                )
            handover_id = request_handover(conn, me, APP_VERSION)
        old_version = app_version_of(conn)
    finally:
        conn.close()
    log.info(
        "offline upgrade schema=%d->%d version=%s->%s", found, latest(), old_version, APP_VERSION
    )
    try:
        record_stage(site.db, handover_id, Stage.COPYING)
        report = copy_database(site.db, site.db_new, handover_id=handover_id)
        record_stage(site.db, handover_id, Stage.COPIED)
        set_aside = finish_swap(site, handover_id, old_version)
    except BaseException as e:
        remove_database(site.db_new)
        if site.db.exists():
            record_stage(site.db, handover_id, Stage.ABORTED, f"{type(e).__name__}: {e}")
        raise
    return UpgradeResult(set_aside, report, old_version)


def needs_upgrade(db: Path) -> bool:
    if not db.exists() or db.stat().st_size == 0:
        return False  # nothing to upgrade (and prepare() decides whether it is a new site)
    conn = connect(db)
    try:
        found = version_of(conn)
    finally:
        conn.close()
    return 0 < found < latest()


async def upgrade_offline_if_needed(site: Site) -> UpgradeResult | None:
    """For `serve`: a database of an older schema is upgraded offline first."""
    if not await trio.to_thread.run_sync(needs_upgrade, site.db):
        return None
    result = await trio.to_thread.run_sync(upgrade_offline, site)
    log.warning(
        "upgraded the database offline: old one kept as %s (revert: gremlin revert %s)",
        result.set_aside.name,
        site.root,
    )
    return result

"""The database is the pidfile: the `server` row names the live server, if any."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time

from ..errors import AlreadyRunning
from ..proc import ProcessId, format_since, started_at
from .handover import refuse_during_handover

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerRecord:
    process: ProcessId
    version: str
    bind: str | None
    control_socket: str | None
    started_at: float
    mode: str

    def alive(self) -> bool:
        return self.process.alive()


def read_server(conn: sqlite3.Connection) -> ServerRecord | None:
    row = conn.execute("SELECT * FROM server WHERE id = 1").fetchone()
    if row is None:
        return None
    return ServerRecord(
        ProcessId(row["pid"], row["pid_start"], row["boot_id"]),
        row["version"],
        row["bind"],
        row["control_socket"],
        row["started_at"],
        row["mode"],
    )


def live_server(conn: sqlite3.Connection) -> ServerRecord | None:
    record = read_server(conn)
    return record if record is not None and record.alive() else None


def refuse_if_running(
    conn: sqlite3.Connection, me: ProcessId, replacing: ProcessId | None = None
) -> ServerRecord | None:
    """Raise AlreadyRunning while another recorded server (not `replacing`) is alive; return
    the record (stale or None) otherwise."""
    old = read_server(conn)
    if old is not None and old.process != me and old.alive() and old.process != replacing:
        raise AlreadyRunning(old.process.pid, format_since(started_at(old.process.pid)), old.bind)
    return old


def claim_server(
    conn: sqlite3.Connection,
    me: ProcessId,
    version: str,
    bind: str | None,
    control_socket: str | None,
    *,
    replacing: ProcessId | None = None,
) -> ServerRecord | None:
    """Record `me` as the site's server. Refuses while another recorded server is alive
    (unless it is `replacing`, the old server of a handover). Returns the stale record taken
    over, if any. Refused while an upgrade or revert is under way (it is replacing the data)."""
    refuse_during_handover(conn)
    old = refuse_if_running(conn, me, replacing)
    if old is not None and old.process != me and old.process != replacing:
        log.warning(
            "taking over stale server record pid=%d version=%s boot=%s",
            old.process.pid,
            old.version,
            old.process.boot[:8],
        )
    conn.execute(
        "INSERT INTO server (id, pid, pid_start, boot_id, version, bind, control_socket,"
        " started_at, mode) VALUES (1, ?, ?, ?, ?, ?, ?, ?, 'normal')"
        " ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, pid_start = excluded.pid_start,"
        " boot_id = excluded.boot_id, version = excluded.version, bind = excluded.bind,"
        " control_socket = excluded.control_socket, started_at = excluded.started_at,"
        " mode = 'normal'",
        (me.pid, me.start, me.boot, version, bind, control_socket, time.time()),
    )
    return old if old is not None and old.process != me else None


def update_bind(conn: sqlite3.Connection, me: ProcessId, bind: str) -> None:
    conn.execute(
        "UPDATE server SET bind = ? WHERE id = 1 AND pid = ? AND pid_start = ?",
        (bind, me.pid, me.start),
    )


def set_mode(conn: sqlite3.Connection, me: ProcessId, mode: str) -> None:
    conn.execute(
        "UPDATE server SET mode = ? WHERE id = 1 AND pid = ? AND pid_start = ?",
        (mode, me.pid, me.start),
    )


def release_server(conn: sqlite3.Connection, me: ProcessId) -> bool:
    """Clear the record if it is still ours (a clean exit). True if it was."""
    cur = conn.execute(
        "DELETE FROM server WHERE id = 1 AND pid = ? AND pid_start = ? AND boot_id = ?",
        (me.pid, me.start, me.boot),
    )
    return cur.rowcount == 1

"""The `handover` table: upgrade requests and their stages, recorded in the OLD database.

The protocol itself lives in gremlin.upgrade; the stage enum lives here, beside its table, so
that the store can refuse writes while a handover is under way without importing the upgrade
package. An upgrade never modifies the old database except these rows (invariant 6).
"""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
import time

from ..errors import Maintenance
from ..proc import ProcessId


class Stage(enum.Enum):
    """Every stage of one handover, in order; DONE and ABORTED are final."""

    REQUESTED = "requested"  # new: db_new.sqlite created, request recorded
    MAINTENANCE = "maintenance"  # old: refusing new writes, letting in-flight ones finish
    ACKNOWLEDGED = "acknowledged"  # old: writers stopped, WAL checkpointed, only reads now
    COPYING = "copying"  # new: copying rows into db_new.sqlite, applying its steps
    COPIED = "copied"  # new: integrity and row counts checked, fsynced
    SOCKET_SENT = "socket_sent"  # old: listening socket passed over the control socket
    EXITING = "exiting"  # old: told to exit; stops accepting, drains, exits
    RENAMING = "renaming"  # new: old exited; setting db.sqlite aside, db_new -> db.sqlite
    DONE = "done"  # new: serving on the new database
    ABORTED = "aborted"  # either: failed before the rename; `reason` says why

    @property
    def final(self) -> bool:
        return self in (Stage.DONE, Stage.ABORTED)


ACTIVE = tuple(s.value for s in Stage if not s.final)


@dataclasses.dataclass(frozen=True)
class Handover:
    id: int
    stage: Stage
    new: ProcessId
    new_version: str
    requested_at: float
    updated_at: float
    reason: str | None


def _row(row: sqlite3.Row) -> Handover:
    return Handover(
        row["id"],
        Stage(row["stage"]),
        ProcessId(row["new_pid"], row["new_pid_start"], row["new_boot_id"]),
        row["new_version"],
        row["requested_at"],
        row["updated_at"],
        row["reason"],
    )


def read_handover(conn: sqlite3.Connection, handover_id: int) -> Handover | None:
    row = conn.execute("SELECT * FROM handover WHERE id = ?", (handover_id,)).fetchone()
    return None if row is None else _row(row)


def active_handover(conn: sqlite3.Connection) -> Handover | None:
    """The handover under way, if any: a non-final stage whose new process is alive.

    A non-final row whose process is gone is an attempt that died; it holds nothing up.
    """
    marks = ", ".join("?" * len(ACTIVE))
    rows = conn.execute(
        f"SELECT * FROM handover WHERE stage IN ({marks}) ORDER BY id DESC", ACTIVE
    ).fetchall()
    for row in rows:
        handover = _row(row)
        if handover.new.alive():
            return handover
    return None


def refuse_during_handover(conn: sqlite3.Connection) -> None:
    """The store's guard on every write: while a handover is under way, the data is being
    copied into the new database, and a write here would be lost."""
    handover = active_handover(conn)
    if handover is not None:
        raise Maintenance(
            f"an upgrade to version {handover.new_version} is under way"
            f" (pid {handover.new.pid}, stage {handover.stage.value}); writes are paused"
        )


def request_handover(conn: sqlite3.Connection, new: ProcessId, new_version: str) -> int:
    """Record a new request (stage REQUESTED). Refuses while another one is under way."""
    refuse_during_handover(conn)
    now = time.time()
    cur = conn.execute(
        "INSERT INTO handover (stage, new_pid, new_pid_start, new_boot_id, new_version,"
        " requested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (Stage.REQUESTED.value, new.pid, new.start, new.boot, new_version, now, now),
    )
    return int(cur.lastrowid or 0)


def set_stage(
    conn: sqlite3.Connection, handover_id: int, stage: Stage, reason: str | None = None
) -> bool:
    """Move a handover to `stage` unless it already reached a final one. True if it moved."""
    marks = ", ".join("?" * len(ACTIVE))
    cur = conn.execute(
        f"UPDATE handover SET stage = ?, updated_at = ?, reason = coalesce(?, reason)"
        f" WHERE id = ? AND stage IN ({marks})",
        (stage.value, time.time(), reason, handover_id, *ACTIVE),
    )
    return cur.rowcount == 1

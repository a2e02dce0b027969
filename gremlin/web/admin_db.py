"""The admin panel's queries and its one write (disable/enable a user). Plain sync functions."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import BadRequest, NotFound

JOB_COLUMNS = (
    "j.id, j.media_id, j.step, j.state, j.attempt, j.max_attempts, j.progress, j.pid,"
    " j.reason, j.log_tail, j.started_at, j.finished_at, j.not_before, j.created_at,"
    " m.title, m.state AS media_state, u.name AS owner_name"
)


def _jobs(conn: sqlite3.Connection, where: str, order: str, limit: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs j JOIN media m ON m.id = j.media_id"
            f" JOIN users u ON u.id = m.owner_id WHERE {where} ORDER BY {order} LIMIT ?",
            (limit,),
        )
    ]


def jobs_overview(conn: sqlite3.Connection, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
    return {
        "running": _jobs(conn, "j.state = 'running'", "j.started_at", limit),
        "queued": _jobs(conn, "j.state = 'queued'", "j.not_before, j.id", limit),
        "failed": _jobs(conn, "j.state = 'failed'", "j.finished_at DESC, j.id DESC", limit),
    }


def running_progress(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """For the panel's live view: every running job's progress."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, media_id, step, state, attempt, progress, pid FROM jobs"
            " WHERE state = 'running' ORDER BY started_at"
        )
    ]


def users_overview(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT u.id, u.name, u.is_admin, u.disabled, u.created_at, u.last_signin_at,"
            " u.quota_bytes,"
            " (SELECT count(*) FROM media m WHERE m.owner_id = u.id) AS media,"
            " (SELECT coalesce(sum(f.size), 0) FROM files f JOIN media m ON m.id = f.media_id"
            "   WHERE m.owner_id = u.id) AS bytes"
            " FROM users u ORDER BY u.name COLLATE NOCASE"
        )
    ]


def storage_by_role(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(role group, files, bytes): originals, and each derived family (thumb, video_*, ...)."""
    groups: dict[str, list[int]] = {}
    for role, n, size in conn.execute(
        "SELECT role, count(*), coalesce(sum(size), 0) FROM files GROUP BY role"
    ):
        key = role.split("_")[0] if role.startswith(("video_", "audio_")) else role
        g = groups.setdefault(key, [0, 0])
        g[0] += n
        g[1] += size
    return sorted(((k, v[0], v[1]) for k, v in groups.items()), key=lambda t: -t[2])


def set_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool, actor_id: int) -> str:
    if user_id == actor_id and disabled:
        raise BadRequest("you cannot disable your own account")
    row = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("there is no such user")
    conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
    return str(row["name"])


def set_quota(conn: sqlite3.Connection, user_id: int, quota_bytes: int | None) -> str:
    """A user's own storage quota (None: the site's `user_quota_bytes`; 0: unlimited)."""
    if quota_bytes is not None and quota_bytes < 0:
        raise BadRequest("a quota cannot be negative")
    row = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("there is no such user")
    conn.execute("UPDATE users SET quota_bytes = ? WHERE id = ?", (quota_bytes, user_id))
    return str(row["name"])

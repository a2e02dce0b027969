"""Read queries and JSON shapes behind /api/v1/media: plain sync functions taking a connection.

Who may see what follows gremlin.web.queries (one rule for pages, files and the API): public
media is listed and viewable once ready; unlisted is viewable by anyone with its id and listed
only to its owner and admins; private only to them; processing or failed media only to them.
Owners and admins also see jobs and the failure reason.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from .queries import Cursor, Viewer, may_fetch_original, may_view

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
STATES = ("processing", "ready", "failed")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def file_path(media_id: str, role: str) -> str:
    return f"/files/{media_id}/{role}"


def media_row(conn: sqlite3.Connection, media_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT m.*, u.name AS owner_name FROM media m JOIN users u ON u.id = m.owner_id"
        " WHERE m.id = ?",
        (media_id,),
    ).fetchone()
    return None if row is None else dict(row)


def represent(
    conn: sqlite3.Connection,
    media: dict[str, Any],
    viewer: Viewer,
    base: str,
    public_originals: bool = False,
) -> dict[str, Any]:
    """The GET /api/v1/media/<id> shape (DESIGN.md: keep these keys exactly)."""
    manages = viewer.may_manage(media["owner_id"])
    originals = may_fetch_original(media, viewer, public_originals)
    files = [
        {
            "role": f["role"],
            "url": base + file_path(media["id"], f["role"]),
            "mime": f["mime"],
            "size": f["size"],
            "sha256": f["sha256"],
            "width": f["width"],
            "height": f["height"],
            "duration": f["duration"],
        }
        for f in conn.execute(
            "SELECT * FROM files WHERE media_id = ? ORDER BY role", (media["id"],)
        )
        if originals or f["role"] != "original"
    ]
    jobs = []
    if manages:
        jobs = [
            {
                "step": j["step"],
                "state": j["state"],
                "attempt": j["attempt"],
                "max_attempts": j["max_attempts"],
                "progress": j["progress"],
                "reason": j["reason"],
            }
            for j in conn.execute(
                "SELECT * FROM jobs WHERE media_id = ? ORDER BY id", (media["id"],)
            )
        ]
    return {
        "id": media["id"],
        "kind": media["kind"],
        "state": media["state"],
        "title": media["title"],
        "owner": media["owner_name"],
        "visibility": media["visibility"],
        "created": iso(media["created_at"]),
        "files": files,
        "jobs": jobs,
        "reason": media["reason"] if manages else None,
    }


def viewable(conn: sqlite3.Connection, media_id: str, viewer: Viewer) -> dict[str, Any] | None:
    media = media_row(conn, media_id)
    return media if media is not None and may_view(media, viewer) else None


def get_media(
    conn: sqlite3.Connection,
    media_id: str,
    viewer: Viewer,
    base: str,
    public_originals: bool = False,
) -> dict[str, Any] | None:
    media = viewable(conn, media_id, viewer)
    return None if media is None else represent(conn, media, viewer, base, public_originals)


def list_media(
    conn: sqlite3.Connection,
    viewer: Viewer,
    base: str,
    *,
    owner: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    tag: str | None = None,
    cursor: Cursor | None = None,
    limit: int = DEFAULT_LIMIT,
    public_originals: bool = False,
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Newest first, keyset-paged; only what `viewer` may see listed."""
    where = ["1"]
    args: list[Any] = []
    if not viewer.is_admin:
        where.append("((m.state = 'ready' AND m.visibility = 'public') OR m.owner_id = ?)")
        args.append(viewer.id if viewer.id is not None else -1)
    for column, value in (("u.name", owner), ("m.kind", kind), ("m.state", state)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if tag:
        where.append("EXISTS (SELECT 1 FROM tags t WHERE t.media_id = m.id AND t.tag = ?)")
        args.append(tag.strip().lower())
    if cursor is not None:
        where.append("(m.created_at < ? OR (m.created_at = ? AND m.id < ?))")
        args += [cursor.created_at, cursor.created_at, cursor.id]
    rows = [
        dict(r)
        for r in conn.execute(
            "SELECT m.*, u.name AS owner_name FROM media m JOIN users u ON u.id = m.owner_id"
            f" WHERE {' AND '.join(where)} ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
            [*args, limit + 1],
        )
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    items = [represent(conn, r, viewer, base, public_originals) for r in rows]
    nxt = Cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
    return items, nxt

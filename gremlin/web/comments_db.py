"""Comments on a media: plain sync queries and writes, and who may delete one.

A comment shows only where its media shows: every function here takes the viewer and checks
`queries.may_view` on the media first, so a private media's comments stay private.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..errors import BadRequest, Forbidden, NotFound
from .queries import Viewer, may_view

MAX_COMMENT_CHARS = 5000


def clean_body(text: str) -> str:
    """A comment's Markdown body, trimmed; refused when empty or too long."""
    body = text.replace("\r\n", "\n").strip()
    if not body:
        raise BadRequest("a comment cannot be empty", hint="Write something, then post it.")
    if len(body) > MAX_COMMENT_CHARS:
        raise BadRequest(
            f"a comment may be at most {MAX_COMMENT_CHARS} characters (this one has {len(body)})",
            hint="Shorten it, or split it in two.",
        )
    return body


def may_delete(viewer: Viewer, author_id: int, media_owner_id: int) -> bool:
    """The comment's author, the media's owner and admins may delete a comment."""
    return viewer.owns(author_id) or viewer.may_manage(media_owner_id)


def _visible_media(conn: sqlite3.Connection, media_id: str, viewer: Viewer) -> sqlite3.Row:
    media = conn.execute(
        "SELECT id, owner_id, state, visibility FROM media WHERE id = ?", (media_id,)
    ).fetchone()
    if media is None or not may_view(media, viewer):
        raise NotFound("there is no such media")
    return media


def comments_for(conn: sqlite3.Connection, media_id: str, viewer: Viewer) -> list[dict[str, Any]]:
    """The media's comments, oldest first, each with its author's name and `deletable`."""
    media = _visible_media(conn, media_id, viewer)
    rows = [
        dict(r)
        for r in conn.execute(
            "SELECT c.id, c.author_id, c.body, c.created_at, u.name AS author_name"
            " FROM comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.media_id = ? ORDER BY c.created_at, c.id",
            (media_id,),
        )
    ]
    for row in rows:
        row["deletable"] = may_delete(viewer, row["author_id"], media["owner_id"])
    return rows


def add_comment(conn: sqlite3.Connection, media_id: str, viewer: Viewer, body: str) -> int:
    """Add a signed-in viewer's comment to a media they may see; returns the comment's id."""
    _visible_media(conn, media_id, viewer)
    cur = conn.execute(
        "INSERT INTO comments (media_id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
        (media_id, viewer.user_id, clean_body(body), time.time()),
    )
    return int(cur.lastrowid or 0)


def delete_comment(
    conn: sqlite3.Connection, media_id: str, comment_id: int, viewer: Viewer
) -> None:
    """Delete one comment of a media the viewer may see, if they may delete it."""
    media = _visible_media(conn, media_id, viewer)
    row = conn.execute(
        "SELECT author_id FROM comments WHERE id = ? AND media_id = ?", (comment_id, media_id)
    ).fetchone()
    if row is None:
        raise NotFound("there is no such comment")
    if not may_delete(viewer, row["author_id"], media["owner_id"]):
        raise Forbidden("only the comment's author, the media's owner or an admin may delete it")
    conn.execute("DELETE FROM comments WHERE id = ?", (comment_id,))

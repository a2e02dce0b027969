"""Collections: a user's ordered lists of media. Plain sync queries and writes.

A collection itself is public; each item shows only to viewers who may see that media
(`queries.may_view`), so a private media in a collection stays private.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from typing import Any

from ..errors import BadRequest, Conflict, NotFound
from ..media.commit import slugify
from .queries import Viewer, attach_thumbs, may_view

MAX_TITLE_CHARS = 120
MAX_NOTE_CHARS = 2000


class Move(enum.Enum):
    UP = "up"
    DOWN = "down"
    TOP = "top"


def collections_of(conn: sqlite3.Connection, owner_id: int | None) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT c.*, (SELECT count(*) FROM collection_items i WHERE i.collection_id = c.id)"
            " AS items FROM collections c WHERE c.owner_id = ? ORDER BY c.title COLLATE NOCASE",
            (owner_id,),
        )
    ]


def collection_by_slug(conn: sqlite3.Connection, owner_id: int, slug: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT c.*, u.name AS owner_name FROM collections c JOIN users u ON u.id = c.owner_id"
        " WHERE c.owner_id = ? AND c.slug = ?",
        (owner_id, slug),
    ).fetchone()
    return dict(row) if row else None


def collection_by_id(conn: sqlite3.Connection, collection_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT c.*, u.name AS owner_name FROM collections c JOIN users u ON u.id = c.owner_id"
        " WHERE c.id = ?",
        (collection_id,),
    ).fetchone()
    return dict(row) if row else None


def collection_items(
    conn: sqlite3.Connection, collection_id: int, viewer: Viewer
) -> list[dict[str, Any]]:
    """The items `viewer` may see, in the collection's order."""
    rows = [
        dict(r)
        for r in conn.execute(
            "SELECT m.id, m.owner_id, m.kind, m.state, m.title, m.visibility, m.width, m.height,"
            " m.duration, m.created_at, m.ready_at, m.description, u.name AS owner_name,"
            " i.position, i.added_at, i.note FROM collection_items i"
            " JOIN media m ON m.id = i.media_id JOIN users u ON u.id = m.owner_id"
            " WHERE i.collection_id = ? ORDER BY i.position, i.added_at",
            (collection_id,),
        )
    ]
    coll = conn.execute("SELECT owner_id FROM collections WHERE id = ?", (collection_id,))
    row = coll.fetchone()
    rows = [r for r in rows if row is not None and _shown(r, viewer, row["owner_id"])]
    attach_thumbs(conn, rows)
    return rows


def _shown(media: dict[str, Any], viewer: Viewer, collection_owner_id: int) -> bool:
    """A collection is a listing: unlisted media shows in it to everyone only when the media's
    owner put it there; in another member's collection, only to that member, the media's owner
    and admins (having its link must not let a member publish it)."""
    if not may_view(media, viewer):
        return False
    return (
        media["visibility"] != "unlisted"
        or media["owner_id"] == collection_owner_id
        or viewer.may_manage(media["owner_id"])
        or viewer.owns(collection_owner_id)
    )


def create_collection(
    conn: sqlite3.Connection, owner_id: int, title: str, description: str = ""
) -> str:
    """Create a collection; returns its slug (unique per owner)."""
    title = " ".join(title.split())[:MAX_TITLE_CHARS]
    if not title:
        raise BadRequest("a collection needs a title")
    base = slugify(title) or "collection"
    slug, n = base, 1
    while conn.execute(
        "SELECT 1 FROM collections WHERE owner_id = ? AND slug = ?", (owner_id, slug)
    ).fetchone():
        n += 1
        slug = f"{base}-{n}"
    conn.execute(
        "INSERT INTO collections (owner_id, title, slug, description, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (owner_id, title, slug, description.strip(), time.time()),
    )
    return slug


def _owned(conn: sqlite3.Connection, collection_id: int, owner_id: int) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM collections WHERE id = ? AND owner_id = ?", (collection_id, owner_id)
    ).fetchone()
    if row is None:
        raise NotFound("there is no such collection of yours")
    return row


def add_item(
    conn: sqlite3.Connection, collection_id: int, owner_id: int, media_id: str, viewer: Viewer
) -> str:
    """Append a media the viewer may see to their collection; returns the collection's slug."""
    coll = _owned(conn, collection_id, owner_id)
    media = conn.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
    if media is None or not may_view(media, viewer):
        raise NotFound("there is no such media")
    if conn.execute(
        "SELECT 1 FROM collection_items WHERE collection_id = ? AND media_id = ?",
        (collection_id, media_id),
    ).fetchone():
        raise Conflict("that media is already in this collection")
    last = conn.execute(
        "SELECT coalesce(max(position), 0) FROM collection_items WHERE collection_id = ?",
        (collection_id,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO collection_items (collection_id, media_id, position, added_at)"
        " VALUES (?, ?, ?, ?)",
        (collection_id, media_id, last + 1, time.time()),
    )
    return str(coll["slug"])


def remove_item(conn: sqlite3.Connection, collection_id: int, owner_id: int, media_id: str) -> str:
    coll = _owned(conn, collection_id, owner_id)
    conn.execute(
        "DELETE FROM collection_items WHERE collection_id = ? AND media_id = ?",
        (collection_id, media_id),
    )
    return str(coll["slug"])


def move_item(
    conn: sqlite3.Connection, collection_id: int, owner_id: int, media_id: str, move: Move
) -> str:
    """Move one item up, down or to the top; positions are renumbered 1..n."""
    coll = _owned(conn, collection_id, owner_id)
    order = [
        r[0]
        for r in conn.execute(
            "SELECT media_id FROM collection_items WHERE collection_id = ?"
            " ORDER BY position, added_at",
            (collection_id,),
        )
    ]
    if media_id not in order:
        raise NotFound("that media is not in this collection")
    i = order.index(media_id)
    order.pop(i)
    target = {Move.UP: max(0, i - 1), Move.DOWN: min(len(order), i + 1), Move.TOP: 0}[move]
    order.insert(target, media_id)
    conn.executemany(
        "UPDATE collection_items SET position = ? WHERE collection_id = ? AND media_id = ?",
        [(pos, collection_id, mid) for pos, mid in enumerate(order, start=1)],
    )
    return str(coll["slug"])


def set_note(
    conn: sqlite3.Connection, collection_id: int, owner_id: int, media_id: str, note: str
) -> str:
    """Set (or clear, when empty) the owner's note on one item; returns the collection's slug."""
    coll = _owned(conn, collection_id, owner_id)
    text = note.replace("\r\n", "\n").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise BadRequest(
            f"a note may be at most {MAX_NOTE_CHARS} characters (this one has {len(text)})"
        )
    cur = conn.execute(
        "UPDATE collection_items SET note = ? WHERE collection_id = ? AND media_id = ?",
        (text or None, collection_id, media_id),
    )
    if cur.rowcount == 0:
        raise NotFound("that media is not in this collection")
    return str(coll["slug"])


def delete_collection(conn: sqlite3.Connection, collection_id: int, owner_id: int) -> None:
    _owned(conn, collection_id, owner_id)
    conn.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

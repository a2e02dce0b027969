"""The writes of an import, one transaction per item (see run.py for the order).

Each imported item and its legacy_map row are written in ONE transaction, so a run killed at
any instant leaves every item either fully imported (and mapped: the next run skips it) or
not at all (the next run imports it). Media go through `commit_upload`, like any upload: the
file is copied into content/incoming/, sniffed, moved into content/queue/ and committed with
its jobs; our own processing then makes fresh derived files. MediaGoblin's database is opened
read-only and nothing is ever written under its user_dev/ tree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import trio
from PIL import Image

from ..accounts import NAME_RE, create_user
from ..errors import GremlinError
from ..media.base import MediaType
from ..media.commit import slugify
from ..media.importer import refuse_in_maintenance
from ..media.registry import HEAD_BYTES, sniff
from ..settings import Settings
from ..store import Site, Store, write_atomic
from .plan import SOURCE, ExistingUser, Kind, MediaPlan, UserPlan
from .reader import MgCollection, MgComment

log = logging.getLogger(__name__)

Commit = Callable[..., Awaitable[Any]]
Mapped = dict[tuple[Kind, str], str]
STAGE_PREFIX = "mediagoblin-import-"
CHUNK = 1024 * 1024


# -- the target site ------------------------------------------------------------------------


def read_target(conn: sqlite3.Connection) -> tuple[Mapped, dict[str, ExistingUser]]:
    """What earlier runs imported, and the users the site has (by casefolded name)."""
    mapped = {
        (Kind(r["kind"]), r["source_id"]): r["target_id"]
        for r in conn.execute(
            "SELECT kind, source_id, target_id FROM legacy_map WHERE source = ?", (SOURCE,)
        )
    }
    users = {
        r["name"].casefold(): ExistingUser(r["id"], r["name"], r["email"])
        for r in conn.execute("SELECT id, name, email FROM users")
    }
    return mapped, users


def read_target_nowrite(db: Path) -> tuple[Mapped, dict[str, ExistingUser]]:
    """Read the site's database without writing anything, not even -wal/-shm files: through
    them when a server has them open, else as an immutable file."""
    if not db.exists():
        return {}, {}
    mode = "mode=ro" if db.with_name(db.name + "-wal").exists() else "immutable=1"
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(db.absolute()))}?{mode}", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return read_target(conn)
    finally:
        conn.close()


def _map(
    conn: sqlite3.Connection, kind: Kind, source_id: str, target: str, extra: Any = None
) -> None:
    conn.execute(
        "INSERT INTO legacy_map (source, kind, source_id, target_id, extra) VALUES (?, ?, ?, ?, ?)",
        (SOURCE, kind.value, source_id, target, None if extra is None else json.dumps(extra)),
    )


# -- users ----------------------------------------------------------------------------------


def insert_user(conn: sqlite3.Connection, plan: UserPlan) -> int:
    refuse_in_maintenance(conn)
    u = plan.mg
    if plan.merge_into is not None:
        user_id = plan.merge_into
    else:
        pw_hash = u.pw_hash if (u.pw_hash or "").startswith("$2") else None
        fields = {"bio": u.bio, "url": u.url, "location": u.location}
        if NAME_RE.match(plan.name):
            user_id = create_user(
                conn, plan.name, pw_hash, is_admin=u.is_admin, email=u.email, **fields
            )
        else:  # MediaGoblin allows names we would refuse for a new account: keep them
            cur = conn.execute(
                "INSERT INTO users (name, password_hash, is_admin, email, bio, url, location,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (plan.name, pw_hash, int(u.is_admin), u.email, *fields.values(), u.created),
            )
            user_id = int(cur.lastrowid or 0)
        conn.execute(
            "UPDATE users SET created_at = ?, disabled = ? WHERE id = ?",
            (u.created, int(u.banned), user_id),
        )
    _map(conn, Kind.USER, str(u.id), str(user_id), {"username": u.username, "name": plan.name})
    return user_id


# -- media ----------------------------------------------------------------------------------


def _copy(source: Path, staged: Path) -> tuple[int, str]:
    def chunks() -> Iterator[bytes]:
        with open(source, "rb") as f:
            while block := f.read(CHUNK):
                yield block

    return write_atomic(staged, chunks())


def inspect_source(
    plan: MediaPlan, types: Mapping[str, MediaType]
) -> tuple[str, None] | tuple[None, str]:
    """(media kind, None), or (None, why the file cannot be imported). Sniffs by content like
    an upload; an image MediaGoblin failed on or left half-processed must also open and verify
    with Pillow."""
    try:
        with open(plan.source, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return None, f"cannot read the file: {e.strerror or e}"
    try:
        media_type, _ = sniff(head, types)
    except GremlinError as e:
        return None, f"unreadable media: {e.message}"
    kind = media_type.kind.value
    if kind == "image" and plan.entry.state != "processed":
        try:
            with Image.open(plan.source) as im:
                im.verify()
        except Exception as e:  # Pillow raises many kinds for a damaged file
            return None, f"unreadable image: {e}"
    return kind, None


def pick_source(
    plan: MediaPlan, types: Mapping[str, MediaType]
) -> tuple[MediaPlan, str | None, str | None, str | None]:
    """(plan, media kind, why not importable, why a fallback was taken): the plan's source if
    it is readable here, else the first readable fallback (e.g. MediaGoblin's rendition of an
    original in a format we do not take)."""
    kind, why = inspect_source(plan, types)
    if why is None:
        return plan, kind, None, None
    for candidate in plan.fallbacks:
        other = plan.falling_back(candidate)
        kind, other_why = inspect_source(other, types)
        if other_why is None:
            what = "its original" if plan.source_key == "original" else "its upload"
            took = "upload" if other.source_key == "queue" else f"{other.source_key!r} rendition"
            return other, kind, None, f"{what} is not usable here ({why}); imported its {took}"
    return plan, None, why, None


def media_hook(plan: MediaPlan, username: str) -> Callable[[sqlite3.Connection, str], None]:
    """Runs inside the commit transaction: MediaGoblin's title, slug and date, and the map."""
    entry = plan.entry

    def hook(conn: sqlite3.Connection, media_id: str) -> None:
        conn.execute(
            "UPDATE media SET title = ?, slug = ?, created_at = ? WHERE id = ?",
            (
                entry.title.strip() or Path(plan.original_name).stem,
                entry.slug or slugify(entry.title),
                entry.created,
                media_id,
            ),
        )
        extra = {
            "user": username,
            "slug": entry.slug,
            "public_id": entry.public_id,
            "license": entry.license,
            "source": plan.source_key,
        }
        _map(conn, Kind.MEDIA, str(entry.id), media_id, extra)
        if entry.slug:
            _map(conn, Kind.MEDIA_URL, f"{username}/{entry.slug}", media_id)
        for f in entry.files:
            _map(conn, Kind.FILE, f.path, media_id, {"key": f.key})

    return hook


def clear_staged(site: Site) -> None:
    """Remove copies a killed run left in incoming/ (ours by name; a re-run makes them anew)."""
    for path in site.incoming.glob(f"*{STAGE_PREFIX}*"):
        if path.name.startswith((STAGE_PREFIX, f".{STAGE_PREFIX}")) and path.is_file():
            path.unlink(missing_ok=True)


async def import_media(
    store: Store,
    settings: Settings,
    plan: MediaPlan,
    *,
    owner_id: int,
    username: str,
    types: Mapping[str, MediaType],
    commit: Commit,
) -> Any:
    entry = plan.entry
    staged = Site(settings.site).incoming / f"{STAGE_PREFIX}{entry.id}{plan.source.suffix}"
    size, sha256 = await trio.to_thread.run_sync(_copy, plan.source, staged)
    try:
        return await commit(
            store,
            settings,
            owner_id=owner_id,
            staged=staged,
            original_name=plan.original_name,
            title=entry.title,
            description=entry.description,
            tags=[t.name for t in entry.tags],
            visibility="public",
            license=plan.license,
            size=size,
            sha256=sha256,
            types=types,
            guard=refuse_in_maintenance,
            on_commit=media_hook(plan, username),
        )
    finally:
        # Committed: it was moved away. Refused or interrupted: do not leave it in incoming/.
        staged.unlink(missing_ok=True)


# -- collections and comments ---------------------------------------------------------------


def insert_collection(
    conn: sqlite3.Connection,
    c: MgCollection,
    owner_id: int,
    items: list[tuple[int, str, str | None, float, str]],
    user: str,
) -> tuple[int, int]:
    """Create the collection unless an earlier run did; add `items` (position, media id, note,
    added, MediaGoblin item id). Returns (our collection id, items added)."""
    refuse_in_maintenance(conn)
    row = conn.execute(
        "SELECT target_id FROM legacy_map WHERE source = ? AND kind = ? AND source_id = ?",
        (SOURCE, Kind.COLLECTION.value, str(c.id)),
    ).fetchone()
    if row is not None:
        collection_id = int(row[0])
    else:
        base = c.slug or slugify(c.title) or f"collection-{c.id}"
        slug, n = base, 1
        while conn.execute(
            "SELECT 1 FROM collections WHERE owner_id = ? AND slug = ?", (owner_id, slug)
        ).fetchone():
            n += 1
            slug = f"{base}-{n}"
        cur = conn.execute(
            "INSERT INTO collections (owner_id, title, slug, description, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (owner_id, c.title, slug, c.description, c.created),
        )
        collection_id = int(cur.lastrowid or 0)
        _map(conn, Kind.COLLECTION, str(c.id), str(collection_id), {"slug": c.slug, "user": user})
    for position, media_id, note, added, item_id in items:
        conn.execute(
            "INSERT INTO collection_items (collection_id, media_id, position, note, added_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (collection_id, media_id, position, note, added),
        )
        _map(conn, Kind.COLLECTION_ITEM, item_id, f"{collection_id}:{media_id}")
    return collection_id, len(items)


def insert_comment(conn: sqlite3.Connection, c: MgComment, media_id: str, author_id: int) -> int:
    refuse_in_maintenance(conn)
    cur = conn.execute(
        "INSERT INTO comments (media_id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
        (media_id, author_id, c.content, c.created),
    )
    comment_id = int(cur.lastrowid or 0)
    _map(conn, Kind.COMMENT, str(c.id), str(comment_id))
    return comment_id

"""Read a GNU MediaGoblin SQLite database, read-only, into plain dataclasses.

The database is opened with `immutable=1`: SQLite then takes no locks and writes nothing (no
journal, no -wal/-shm files), which is what we promise the admin. That is only safe while no
MediaGoblin process writes to it, so a database with a hot journal or WAL beside it is refused.

Written against MediaGoblin 0.15 (the "generic model reference" schema of 0.9 and later); the
per-type tables (`image__mediadata` ...) are optional, as they are often empty.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.parse
from pathlib import Path

from ..errors import GremlinError
from .models import (
    MgCollection,
    MgComment,
    MgEntry,
    MgFile,
    MgInstance,
    MgItem,
    MgTag,
    MgUser,
)

MEDIA_TYPE_PREFIX = "mediagoblin.media_types."
MEDIA_TABLE = "core__media_entries"


class MediaGoblinError(GremlinError):
    code = "bad_mediagoblin"


def open_mediagoblin_db(path: Path) -> sqlite3.Connection:
    """Open MediaGoblin's database so that nothing can be written to it."""
    if not path.is_file():
        raise MediaGoblinError(
            f"no MediaGoblin database at {path}",
            hint="Pass the mediagoblin.db file named by sql_engine in mediagoblin.ini.",
        )
    for suffix in ("-journal", "-wal"):
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_size > 0:
            raise MediaGoblinError(
                f"{side} exists: MediaGoblin is running or did not shut down cleanly",
                hint="Stop MediaGoblin (and its celery workers), then run the import again.",
            )
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        tables = _tables(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise MediaGoblinError(f"{path} is not an SQLite database: {e}") from e
    if MEDIA_TABLE not in tables or "core__users" not in tables:
        conn.close()
        raise MediaGoblinError(
            f"{path} is not a MediaGoblin database (no {MEDIA_TABLE} table)",
            hint="MediaGoblin 0.9 or later with an SQLite database is supported.",
        )
    if "core__local_users" not in tables or "core__generic_model_reference" not in tables:
        conn.close()
        raise MediaGoblinError(
            f"{path} is from a MediaGoblin older than 0.9",
            hint="Upgrade it with MediaGoblin's own `gmg dbupdate` first, then import.",
        )
    return conn


def parse_time(value: object) -> float:
    """MediaGoblin's naive-UTC timestamps ('2026-11-28 07:06:23.771289') as epoch seconds."""
    if value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    parsed = dt.datetime.fromisoformat(str(value).strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def read_instance(conn: sqlite3.Connection) -> MgInstance:
    tables = _tables(conn)
    gmr = {
        r["id"]: (r["model_type"], r["obj_pk"])
        for r in conn.execute("SELECT id, obj_pk, model_type FROM core__generic_model_reference")
    }
    remote = (
        frozenset(r[0] for r in conn.execute("SELECT id FROM core__remote_users"))
        if "core__remote_users" in tables
        else frozenset()
    )
    return MgInstance(
        users=_users(conn, tables),
        remote_user_ids=remote,
        entries=_entries(conn),
        collections=_collections(conn, gmr),
        comments=_comments(conn, gmr),
        deleted_entries=_graveyard(conn, tables),
    )


def _users(conn: sqlite3.Connection, tables: set[str]) -> tuple[MgUser, ...]:
    privileges: dict[int, set[str]] = {}
    if {"core__privileges", "core__privileges_users"} <= tables:
        cols = _columns(conn, "core__privileges_users")
        user_col = "user" if "user" in cols else "core__user_id"
        priv_col = "privilege" if "privilege" in cols else "core__privilege_id"
        for r in conn.execute(
            f'SELECT pu."{user_col}" AS u, p.privilege_name AS name FROM core__privileges_users pu'
            f' JOIN core__privileges p ON p.id = pu."{priv_col}"'
        ):
            privileges.setdefault(r["u"], set()).add(r["name"])
    banned: set[int] = set()
    if "core__user_bans" in tables:
        now = dt.datetime.now(dt.UTC).date().isoformat()
        for r in conn.execute("SELECT user_id, expiration_date FROM core__user_bans"):
            if r["expiration_date"] is None or str(r["expiration_date"]) >= now:
                banned.add(r["user_id"])
    rows = conn.execute(
        "SELECT u.id, lu.username, lu.email, lu.pw_hash, u.bio, u.url, u.created,"
        " loc.name AS location"
        " FROM core__users u JOIN core__local_users lu ON lu.id = u.id"
        " LEFT JOIN core__locations loc ON loc.id = u.location ORDER BY u.id"
    )
    return tuple(
        MgUser(
            id=r["id"],
            username=r["username"],
            email=r["email"] or None,
            pw_hash=r["pw_hash"] or None,
            bio=r["bio"] or "",
            url=r["url"] or "",
            location=r["location"] or "",
            created=parse_time(r["created"]),
            privileges=frozenset(privileges.get(r["id"], ())),
            banned=r["id"] in banned,
        )
        for r in rows
    )


def _entries(conn: sqlite3.Connection) -> tuple[MgEntry, ...]:
    files: dict[int, list[MgFile]] = {}
    for r in conn.execute(
        "SELECT f.media_entry, k.name, f.file_path FROM core__mediafiles f"
        " JOIN core__file_keynames k ON k.id = f.name_id ORDER BY f.media_entry, k.id"
    ):
        if r["file_path"]:
            files.setdefault(r["media_entry"], []).append(MgFile(r["name"], r["file_path"]))
    tags: dict[int, list[MgTag]] = {}
    for r in conn.execute(
        "SELECT mt.media_entry, mt.name, t.slug FROM core__media_tags mt"
        " JOIN core__tags t ON t.id = mt.tag ORDER BY mt.media_entry, mt.id"
    ):
        tags.setdefault(r["media_entry"], []).append(MgTag(r["name"] or r["slug"], r["slug"]))
    cols = _columns(conn, MEDIA_TABLE)
    owner = _owner_column(conn, MEDIA_TABLE)
    location = "location" if "location" in cols else "NULL"
    entries = []
    for r in conn.execute(
        f"SELECT id, public_id, {owner} AS owner, title, slug, description, media_type, state,"
        f" license, created, fail_error, queued_media_file, {location} AS location"
        f" FROM {MEDIA_TABLE} ORDER BY id"
    ):
        media_type = str(r["media_type"])
        entries.append(
            MgEntry(
                id=r["id"],
                public_id=r["public_id"],
                owner_id=r["owner"],
                title=r["title"] or "",
                slug=r["slug"] or None,
                description=r["description"] or "",
                media_type=media_type.removeprefix(MEDIA_TYPE_PREFIX),
                state=str(r["state"]),
                license=r["license"] or None,
                created=parse_time(r["created"]),
                fail_error=r["fail_error"],
                queued_media_file=r["queued_media_file"] or None,
                has_location=r["location"] is not None,
                files=tuple(files.get(r["id"], ())),
                tags=tuple(tags.get(r["id"], ())),
            )
        )
    return tuple(entries)


def _owner_column(conn: sqlite3.Connection, table: str) -> str:
    """`actor` since MediaGoblin's federation work; `uploader`, `creator` or `author` before."""
    cols = _columns(conn, table)
    return next((c for c in ("actor", "uploader", "creator", "author") if c in cols), "actor")


def _resolve(gmr: dict[int, tuple[str, int]], ref: int) -> tuple[int | None, str]:
    model_type, pk = gmr.get(ref, ("missing", ref))
    return (pk if model_type == MEDIA_TABLE else None), f"{model_type} {pk}"


def _collections(
    conn: sqlite3.Connection, gmr: dict[int, tuple[str, int]]
) -> tuple[MgCollection, ...]:
    items: dict[int, list[MgItem]] = {}
    by_gmr = "object_id" in _columns(conn, "core__collection_items")
    for r in conn.execute("SELECT * FROM core__collection_items"):
        if by_gmr:
            entry_id, target = _resolve(gmr, r["object_id"])
        else:  # before generic references: the entry itself
            entry_id, target = r["media_entry"], f"{MEDIA_TABLE} {r['media_entry']}"
        items.setdefault(r["collection"], []).append(
            MgItem(
                id=r["id"],
                entry_id=entry_id,
                target=target,
                note=r["note"] or None,
                added=parse_time(r["added"]),
                position=r["position"],
            )
        )
    owner = _owner_column(conn, "core__collections")
    collections = []
    for r in conn.execute("SELECT * FROM core__collections ORDER BY id"):
        ordered = sorted(items.get(r["id"], ()), key=display_order)
        collections.append(
            MgCollection(
                id=r["id"],
                owner_id=r[owner],
                title=r["title"] or "",
                slug=r["slug"] or None,
                description=r["description"] or "",
                created=parse_time(r["created"]),
                type=r["type"] or "",
                items=tuple(ordered),
            )
        )
    return tuple(collections)


def display_order(item: MgItem) -> tuple[bool, int, float, int]:
    """Items with a position first, by position; then (MediaGoblin's usual case, position NULL)
    in the order they were added."""
    return (item.position is None, item.position or 0, item.added, item.id)


def _comments(conn: sqlite3.Connection, gmr: dict[int, tuple[str, int]]) -> tuple[MgComment, ...]:
    target_of: dict[int, int | None] = {}
    cols = _columns(conn, "core__media_comments")
    if "core__comment_links" in _tables(conn):
        for r in conn.execute("SELECT target_id, comment_id FROM core__comment_links ORDER BY id"):
            model_type, pk = gmr.get(r["comment_id"], ("missing", 0))
            if model_type == "core__media_comments":
                target_of[pk] = _resolve(gmr, r["target_id"])[0]
    elif "media_entry" in cols:  # before comment links: the entry itself
        target_of = dict(conn.execute("SELECT id, media_entry FROM core__media_comments"))
    author = _owner_column(conn, "core__media_comments")
    return tuple(
        MgComment(
            id=r["id"],
            author_id=r[author],
            entry_id=target_of.get(r["id"]),
            content=r["content"] or "",
            created=parse_time(r["created"]),
        )
        for r in conn.execute("SELECT * FROM core__media_comments ORDER BY created, id")
    )


def _graveyard(conn: sqlite3.Connection, tables: set[str]) -> int:
    if "core__graveyard" not in tables:
        return 0
    row = conn.execute(
        "SELECT count(*) FROM core__graveyard WHERE object_type IN ('image', 'video', 'audio')"
    ).fetchone()
    return int(row[0])

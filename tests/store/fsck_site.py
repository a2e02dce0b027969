"""A real site with real rows and real files for fsck and GC tests: rows are inserted directly,
each with its file's true size and SHA-256, so that any damage we make is the only damage."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

from gremlin.store import Site, connect

HOUR = 3600.0


def db(site: Site) -> sqlite3.Connection:
    return connect(site.db)


def put_file(site: Site, rel: str, data: bytes) -> tuple[int, str]:
    path = site.content / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data), hashlib.sha256(data).hexdigest()


def make_old(path: Path, seconds: float) -> None:
    """Set a file's mtime back (ctime cannot be set: the code under test takes the newer)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def add_user(conn: sqlite3.Connection, name: str = "ann") -> int:
    row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0])
    cur = conn.execute("INSERT INTO users (name, created_at) VALUES (?, ?)", (name, time.time()))
    return int(cur.lastrowid or 0)


def add_file_row(
    conn: sqlite3.Connection, site: Site, media_id: str, role: str, rel: str, data: bytes
) -> int:
    size, sha = put_file(site, rel, data)
    cur = conn.execute(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
        " VALUES (?, ?, ?, 'application/octet-stream', ?, ?, ?)",
        (media_id, role, rel, size, sha, time.time()),
    )
    return int(cur.lastrowid or 0)


def add_media(
    site: Site,
    media_id: str,
    *,
    state: str = "ready",
    original: str | None = None,
    derived: dict[str, str] | None = None,
    job_state: str = "done",
    size: int = 200_000,
) -> int | None:
    """A media with an original at `original` (relative) and derived files {role: name} made
    by one job 'derive' (in `job_state`). Returns the job id (None without derived files)."""
    conn = db(site)
    try:
        conn.execute("BEGIN IMMEDIATE")
        owner = add_user(conn)
        now = time.time()
        conn.execute(
            "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
            " VALUES (?, ?, 'image', ?, ?, ?)",
            (media_id, owner, state, now, now),
        )
        original = original or f"originals/{media_id}/original.jpg"
        add_file_row(conn, site, media_id, "original", original, os.urandom(size))
        job_id = None
        if derived:
            for role, name in derived.items():
                data = os.urandom(size // 4)
                add_file_row(conn, site, media_id, role, f"media/{media_id}/{name}", data)
            first = next(iter(derived.values()))
            cur = conn.execute(
                "INSERT INTO jobs (media_id, step, input_path, output_path, params, state,"
                " attempt, max_attempts, finished_at, created_at)"
                " VALUES (?, 'derive', ?, ?, ?, ?, 1, 3, ?, ?)",
                (
                    media_id,
                    original,
                    f"media/{media_id}/{first}",
                    json.dumps({"outputs": derived, "input_role": "original"}),
                    job_state,
                    now - 2 * HOUR if job_state in ("done", "failed") else None,
                    now,
                ),
            )
            job_id = int(cur.lastrowid or 0)
        conn.execute("COMMIT")
        return job_id
    finally:
        conn.close()


def populate(site: Site) -> dict[str, int | None]:
    """m1 ready (original in originals/, thumb + medium made by a done job), m2 processing
    (original in queue/, its job queued)."""
    return {
        "m1": add_media(site, "m1", derived={"thumb": "thumb.webp", "medium": "medium.webp"}),
        "m2": add_media(
            site,
            "m2",
            state="processing",
            original="queue/m2/original.png",
            derived=None,
        ),
    }


def snapshot(site: Site) -> dict[str, str]:
    """Every file under content/: relative path -> SHA-256."""
    out = {}
    for dirpath, _, names in os.walk(site.content):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(site.content).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return out


def one(conn: sqlite3.Connection, sql: str, *args: object) -> sqlite3.Row | None:
    return conn.execute(sql, args).fetchone()

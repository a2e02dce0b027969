"""Databases for the upgrade tests: a site database at the current schema with rows in the
tables an upgrade must carry (users, tokens, media, files, jobs, tags)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gremlin.store import STEPS, connect, transaction
from tests.upgrade import next_version

TABLES = ("users", "tokens", "media", "files", "jobs", "tags")
NEXT = (*STEPS, *next_version.STEPS)  # this code's steps, then the next version's


def fill(db: Path, media: int = 20, *, start: int = 0) -> None:
    """Add `media` media (with 2 files, 2 jobs, 2 tags each) owned by user 'ann'."""
    conn = connect(db)
    now = time.time()
    try:
        with transaction(conn):
            row = conn.execute("SELECT id FROM users WHERE name = 'ann'").fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO users (name, password_hash, created_at) VALUES ('ann', 'x', ?)",
                    (now,),
                )
                owner = cur.lastrowid
                conn.execute(
                    "INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, 'h', ?)",
                    (owner, now),
                )
            else:
                owner = row[0]
            for i in range(start, start + media):
                mid = f"m{i:07d}"
                conn.execute(
                    "INSERT INTO media (id, owner_id, kind, state, title, created_at, updated_at)"
                    " VALUES (?, ?, 'image', 'ready', ?, ?, ?)",
                    (mid, owner, f"a photo number {i}", now, now),
                )
                for role in ("original", "thumb"):
                    conn.execute(
                        "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
                        " VALUES (?, ?, ?, 'image/jpeg', 10, 'ab', ?)",
                        (mid, role, f"media/{mid}/{role}.jpg", now),
                    )
                for step in ("probe", "thumb"):
                    conn.execute(
                        "INSERT INTO jobs (media_id, step, input_path, output_path, state,"
                        " max_attempts, created_at) VALUES (?, ?, 'in', 'out', 'done', 3, ?)",
                        (mid, step, now),
                    )
                for tag in ("cat", f"t{i % 7}"):
                    conn.execute("INSERT INTO tags (media_id, tag) VALUES (?, ?)", (mid, tag))
    finally:
        conn.close()


def dump(db: Path, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple[object, ...]]]:
    """Every row of `tables`, in rowid order (read-only, through a plain connection)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in tables
        }
    finally:
        conn.close()

"""Rows for page tests, inserted directly: media with files, tags, jobs (no processing)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from typing import Any

from gremlin.store import Store

_ids = itertools.count(1)


def insert_media(
    conn: sqlite3.Connection,
    owner_id: int,
    *,
    title: str = "A photo",
    description: str = "",
    visibility: str = "public",
    state: str = "ready",
    kind: str = "image",
    tags: tuple[str, ...] = (),
    created_at: float | None = None,
    exif: dict[str, Any] | None = None,
    files: dict[str, dict[str, Any]] | None = None,
    reason: str | None = None,
) -> str:
    n = next(_ids)
    media_id = f"m{n:06d}{int(time.time() * 1e6) % 10**9:09d}"
    now = created_at if created_at is not None else time.time()
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, title, description, visibility, exif,"
        " reason, created_at, updated_at, ready_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            media_id, owner_id, kind, state, title, description, visibility,
            json.dumps(exif) if exif else None, reason, now, now,
            now if state == "ready" else None,
        ),
    )  # fmt: skip
    if files is None:
        files = {
            "original": {"mime": "image/jpeg", "width": 4000, "height": 3000},
            "medium": {"mime": "image/webp", "width": 1280, "height": 960},
            "thumb": {"mime": "image/webp", "width": 360, "height": 270},
        }
    for role, f in files.items():
        conn.execute(
            "INSERT INTO files (media_id, role, path, mime, size, sha256, width, height,"
            " duration, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                media_id, role, f"media/{media_id}/{role}", f["mime"], f.get("size", 1000),
                "0" * 64, f.get("width"), f.get("height"), f.get("duration"), now,
            ),
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO tags (media_id, tag) VALUES (?, ?)", [(media_id, t) for t in tags]
    )
    return media_id


def insert_job(
    conn: sqlite3.Connection,
    media_id: str,
    *,
    step: str = "image",
    state: str = "failed",
    progress: float = 0.0,
    reason: str | None = None,
    log_tail: str | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO jobs (media_id, step, input_path, output_path, state, attempt, max_attempts,"
        " progress, reason, log_tail, created_at, finished_at)"
        " VALUES (?, ?, 'queue/x', 'media/x', ?, 3, 3, ?, ?, ?, ?, ?)",
        (media_id, step, state, progress, reason, log_tail, time.time(), time.time()),
    )
    return int(cur.lastrowid or 0)


async def media(store: Store, owner_id: int, **kw: Any) -> str:
    return await store.write(lambda c: insert_media(c, owner_id, **kw))

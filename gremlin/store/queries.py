"""Read queries shared by the CLI and the web: plain sync functions taking a connection."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def status_counts(conn: sqlite3.Connection) -> dict[str, Any]:
    media = {"processing": 0, "ready": 0, "failed": 0}
    for state, n in conn.execute("SELECT state, count(*) FROM media GROUP BY state"):
        media[state] = n
    jobs = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    for state, n in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
        jobs[state] = n
    stored = conn.execute("SELECT coalesce(sum(size), 0) FROM files").fetchone()[0]
    last = conn.execute(
        "SELECT finished_at, findings FROM fsck_runs WHERE finished_at IS NOT NULL"
        " ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    fsck = None
    if last is not None:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last["finished_at"]))
        fsck = {"at": at, "findings": last["findings"]}
    return {"media": media, "jobs": jobs, "storage": {"bytes": stored}, "fsck": fsck}

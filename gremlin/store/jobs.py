"""Job rows. Only the job engine writes jobs after they are created; media commits and
follow-up planning create them through `insert_planned_jobs`."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from ..media.base import PlannedJob


def insert_planned_jobs(
    conn: sqlite3.Connection,
    media_id: str,
    planned: Sequence[PlannedJob],
    *,
    max_attempts: int,
    not_before: float = 0.0,
) -> list[int]:
    """Queue `planned` for `media_id`; each job's input is the media's file of `input_role`.

    Output paths are relative to content/: media/<media-id>/<name>.
    """
    ids = []
    now = time.time()
    for job in planned:
        row = conn.execute(
            "SELECT path FROM files WHERE media_id = ? AND role = ?", (media_id, job.input_role)
        ).fetchone()
        if row is None:
            raise LookupError(f"media {media_id} has no {job.input_role!r} file for {job.step}")
        outputs = {role: f"media/{media_id}/{name}" for role, name in job.outputs.items()}
        primary = next(iter(outputs.values()), f"media/{media_id}")
        params = {**job.params, "outputs": dict(job.outputs), "input_role": job.input_role}
        cur = conn.execute(
            "INSERT INTO jobs (media_id, step, input_path, output_path, params, state, blocking,"
            " attempt, max_attempts, not_before, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?)",
            (
                media_id,
                job.step,
                row["path"],
                primary,
                json.dumps(params),
                int(job.blocking),
                max_attempts,
                not_before,
                now,
            ),
        )
        ids.append(int(cur.lastrowid or 0))
    return ids

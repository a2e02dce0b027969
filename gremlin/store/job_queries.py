"""The job engine's queries: plain sync functions taking a connection (run by Store.write/read).

The job supervisor owns writes to `jobs` after creation (the watchdog only writes `progress`);
`retry_media` is the one other writer, shared by `gremlin retry` and the web API.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
import time
from typing import Any

from ..actors.jobstate import (
    Backoff,
    Event,
    InvalidTransition,
    Job,
    JobState,
    Retry,
    Started,
    media_reason,
    next_state,
)
from ..errors import Conflict, NotFound
from ..proc import ProcessId


@dataclasses.dataclass(frozen=True)
class JobRow:
    id: int
    media_id: str
    step: str
    input_path: str
    output_path: str
    params: dict[str, Any]
    state: JobState
    blocking: bool
    attempt: int
    max_attempts: int
    not_before: float
    process: ProcessId | None
    started_at: float | None
    progress: float
    reason: str | None
    media_kind: str = ""

    @property
    def outputs(self) -> dict[str, str]:
        """role -> file name under media/<media-id>/ (and under the job's out/)."""
        return dict(self.params.get("outputs", {}))

    @property
    def machine(self) -> Job:
        return Job(self.state, self.attempt, self.max_attempts, self.not_before, self.reason)


def job_from_row(row: sqlite3.Row) -> JobRow:
    process = None
    if row["pid"] is not None and row["pid_start"] is not None:
        process = ProcessId(row["pid"], row["pid_start"], row["boot_id"] or "")
    return JobRow(
        id=row["id"],
        media_id=row["media_id"],
        step=row["step"],
        input_path=row["input_path"],
        output_path=row["output_path"],
        params=json.loads(row["params"] or "{}"),
        state=JobState(row["state"]),
        blocking=bool(row["blocking"]),
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        not_before=row["not_before"],
        process=process,
        started_at=row["started_at"],
        progress=row["progress"],
        reason=row["reason"],
        media_kind=row["media_kind"] if "media_kind" in row.keys() else "",  # noqa: SIM118
    )


SELECT_JOBS = (
    "SELECT jobs.*, media.kind AS media_kind FROM jobs JOIN media ON media.id = jobs.media_id"
)


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRow | None:
    row = conn.execute(f"{SELECT_JOBS} WHERE jobs.id = ?", (job_id,)).fetchone()
    return None if row is None else job_from_row(row)


def running_jobs(conn: sqlite3.Connection) -> list[JobRow]:
    rows = conn.execute(f"{SELECT_JOBS} WHERE jobs.state = 'running' ORDER BY jobs.id").fetchall()
    return [job_from_row(r) for r in rows]


def claim_due_jobs(conn: sqlite3.Connection, now: float, limit: int) -> list[JobRow]:
    """Mark up to `limit` queued jobs whose not-before has passed as running (attempt counted)."""
    if limit <= 0:
        return []
    rows = conn.execute(
        f"{SELECT_JOBS} WHERE jobs.state = 'queued' AND jobs.not_before <= ?"
        " ORDER BY jobs.not_before, jobs.id LIMIT ?",
        (now, limit),
    ).fetchall()
    claimed = []
    for row in rows:
        job = job_from_row(row)
        try:
            after = next_state(job.machine, Started(), now=now, backoff=Backoff(0, 0), jitter=0)
        except InvalidTransition:
            conn.execute(
                "UPDATE jobs SET state = 'failed', finished_at = ? WHERE id = ?", (now, job.id)
            )
            continue
        conn.execute(
            "UPDATE jobs SET state = 'running', attempt = ?, started_at = ?, finished_at = NULL,"
            " pid = NULL, pid_start = NULL, boot_id = NULL, progress = 0, exit_code = NULL,"
            " log_path = ? WHERE id = ?",
            (after.attempt, now, f"jobs/{job.id}/log", job.id),
        )
        claimed.append(
            dataclasses.replace(
                job, state=JobState.RUNNING, attempt=after.attempt, started_at=now, process=None
            )
        )
    return claimed


def next_due(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT min(not_before) FROM jobs WHERE state = 'queued'").fetchone()
    return None if row[0] is None else float(row[0])


def record_pid(
    conn: sqlite3.Connection, job_id: int, process: ProcessId, started_at: float | None = None
) -> None:
    """Copy the pid file into the row of the attempt that started at `started_at` (a late
    write after that attempt ended changes nothing)."""
    conn.execute(
        "UPDATE jobs SET pid = ?, pid_start = ?, boot_id = ? WHERE id = ? AND state = 'running'"
        " AND pid IS NULL AND (? IS NULL OR started_at = ?)",
        (process.pid, process.start, process.boot, job_id, started_at, started_at),
    )


def set_progress(conn: sqlite3.Connection, job_id: int, progress: float) -> None:
    conn.execute(
        "UPDATE jobs SET progress = ? WHERE id = ? AND state = 'running'", (progress, job_id)
    )


def apply_event(
    conn: sqlite3.Connection,
    job: JobRow,
    event: Event,
    *,
    backoff: Backoff,
    now: float | None = None,
    log_tail: list[str] | None = None,
    exit_code: int | None = None,
    jitter: float | None = None,
) -> Job:
    """Move a running job on after a failure or a stop (not success: see finish.finish_success).

    A job that ends `failed` and blocks its media makes the media `failed` with a reason.
    """
    now = time.time() if now is None else now
    current = get_job(conn, job.id)
    if current is None or current.state is not JobState.RUNNING:
        return job.machine if current is None else current.machine  # finished already
    job = current
    after = next_state(
        job.machine,
        event,
        now=now,
        backoff=backoff,
        jitter=random.random() if jitter is None else jitter,
    )
    finished = now if after.state in (JobState.DONE, JobState.FAILED) else None
    conn.execute(
        "UPDATE jobs SET state = ?, attempt = ?, not_before = ?, reason = ?, finished_at = ?,"
        " exit_code = ?, log_tail = coalesce(?, log_tail), pid = NULL, pid_start = NULL,"
        " boot_id = NULL WHERE id = ?",
        (
            after.state.value,
            after.attempt,
            after.not_before,
            after.reason,
            finished,
            exit_code,
            None if log_tail is None else "\n".join(log_tail),
            job.id,
        ),
    )
    if after.state is JobState.FAILED and job.blocking:
        bad_input = getattr(event, "bad_input", False)
        conn.execute(
            "UPDATE media SET state = 'failed', reason = ?, updated_at = ? WHERE id = ?",
            (media_reason(job.step, after, bad_input=bad_input), now, job.media_id),
        )
    return after


def mark_ready_if_unblocked(conn: sqlite3.Connection, media_id: str, now: float) -> bool:
    """Make a processing media `ready` when none of its blocking jobs is unfinished."""
    waiting = conn.execute(
        "SELECT count(*) FROM jobs WHERE media_id = ? AND blocking AND state != 'done'",
        (media_id,),
    ).fetchone()[0]
    if waiting:
        return False
    cur = conn.execute(
        "UPDATE media SET state = 'ready', reason = NULL, ready_at = ?, updated_at = ?"
        " WHERE id = ? AND state = 'processing'",
        (now, now, media_id),
    )
    return cur.rowcount == 1


def retry_media(conn: sqlite3.Connection, media_id: str, now: float | None = None) -> int:
    """Requeue a media's failed jobs with fresh attempts; a failed media goes back to
    processing. Jobs that succeeded are not run again. Returns how many jobs were requeued.
    Shared by `gremlin retry` and POST /api/v1/media/<id>/retry."""
    now = time.time() if now is None else now
    media = conn.execute("SELECT state FROM media WHERE id = ?", (media_id,)).fetchone()
    if media is None:
        raise NotFound(f"no media {media_id}", hint="List media ids with: gremlin jobs SITE")
    rows = conn.execute(
        "SELECT * FROM jobs WHERE media_id = ? AND state = 'failed'", (media_id,)
    ).fetchall()
    if not rows:
        raise Conflict(
            f"media {media_id} has no failed jobs to retry (it is {media['state']})",
            hint="Only failed processing can be retried; see: gremlin jobs SITE",
        )
    for row in rows:
        after = next_state(
            job_from_row(row).machine, Retry(), now=now, backoff=Backoff(0, 0), jitter=0
        )
        conn.execute(
            "UPDATE jobs SET state = ?, attempt = ?, not_before = ?, reason = NULL,"
            " exit_code = NULL, finished_at = NULL, progress = 0 WHERE id = ?",
            (after.state.value, after.attempt, after.not_before, row["id"]),
        )
    conn.execute(
        "UPDATE media SET state = 'processing', reason = NULL, updated_at = ?"
        " WHERE id = ? AND state = 'failed'",
        (now, media_id),
    )
    return len(rows)


def list_jobs(conn: sqlite3.Connection, media_id: str | None = None) -> list[dict[str, Any]]:
    """The `gremlin jobs --json` shape (also the web API's, minus id/media_id/pid)."""
    sql = "SELECT * FROM jobs" + (" WHERE media_id = ?" if media_id else "") + " ORDER BY id"
    rows = conn.execute(sql, (media_id,) if media_id else ()).fetchall()
    return [
        {
            "id": r["id"],
            "media_id": r["media_id"],
            "step": r["step"],
            "state": r["state"],
            "attempt": r["attempt"],
            "max_attempts": r["max_attempts"],
            "progress": r["progress"],
            "pid": r["pid"],
            "reason": r["reason"],
        }
        for r in rows
    ]

"""Finishing a job from what its process left: the status file, the killed mark, the outputs.

Success: each declared output moves from jobs/<id>/out/<name> to media/<media-id>/<name>, its
size, SHA-256, MIME type and dimensions go into `files`, the media type's `on_done` runs and its
follow-up jobs are inserted, the job is `done` and the media `ready` when nothing blocks it, all
in ONE write transaction. Then the raw original is settled (queue/ -> originals/).
Failure: partial outputs are deleted, the reason and log tail recorded, the job requeued with
backoff or failed (and its media with it). Scratch directories of finished attempts are removed
here, at once (the log tail lives on in the database); GC only sees those of crashed servers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from ..media.base import EXIT_BAD_INPUT, JobView, MediaType
from ..settings import Settings
from ..store import Site, Store
from ..store.content import fsync_dir, move_durable
from ..store.job_queries import JobRow, apply_event, mark_ready_if_unblocked
from ..store.jobs import insert_planned_jobs
from .diskspace import is_disk_full, low_on_space, postponed_if_full
from .jobfiles import JobDir, Status
from .jobstate import Backoff, Event, Failed, Hung, Job, JobState, NoSpace, StoppedByUs, Vanished
from .outputs import Output, gather_outputs

log = logging.getLogger(__name__)


class NoMediaType(LookupError):
    pass


def media_type_for(types: Mapping[str, MediaType], job: JobRow) -> MediaType:
    """params["media_type"], else the media's kind as a type name, else a type of that kind."""
    name = str(job.params.get("media_type") or job.media_kind)
    if name in types:
        return types[name]
    for media_type in types.values():
        if getattr(media_type.kind, "value", None) == job.media_kind:
            return media_type
    raise NoMediaType(f"no media type {name!r} is installed")


def input_path(conn: sqlite3.Connection, site: Site, job: JobRow) -> Path:
    """The job's input as stored now (the original may have moved to originals/)."""
    role = job.params.get("input_role", "original")
    row = conn.execute(
        "SELECT path FROM files WHERE media_id = ? AND role = ?", (job.media_id, role)
    ).fetchone()
    return site.path(row["path"] if row else job.input_path)


def job_view(site: Site, job: JobRow, input: Path) -> JobView:
    return JobView(
        id=job.id,
        media_id=job.media_id,
        step=job.step,
        input=input,
        out=JobDir(site.jobs / str(job.id)).out,
        outputs=job.outputs,
        params=job.params,
        attempt=job.attempt,
    )


def failure_event(
    jobdir: JobDir, status: Status | None, tail: list[str], *, disk_low: bool = False
) -> Event:
    """What a non-successful end means, in the words a person will read. `disk_low`: the
    disk is (nearly) full now, so a process that left no status most likely ran out of space."""
    killed = jobdir.read_killed()
    if killed:
        try:
            mark = json.loads(killed)
        except ValueError:
            mark = {"reason": killed}
        if "hung_seconds" in mark:
            return Hung(float(mark["hung_seconds"]))
        return Failed(str(mark.get("reason", killed)))
    last = tail[-1][:300] if tail else "(no output)"
    if (status is None and disk_low) or (status is not None and status.no_space):
        return NoSpace()
    if status is None:
        return Vanished(counted=True)
    if status.exit_code == EXIT_BAD_INPUT:
        return Failed(f"bad input: {last}", bad_input=True)
    if status.exit_code is not None:
        return Failed(f"exited {status.exit_code}: {last}")
    name = signal.Signals(status.signal).name if status.signal else "a signal"
    return Failed(f"killed by {name}: {last}")


def commit_success(
    conn: sqlite3.Connection,
    site: Site,
    job: JobRow,
    outputs: list[Output],
    result: Mapping[str, Any],
    media_type: MediaType,
    settings: Settings,
) -> bool | None:
    """The one transaction that finishes a job well. Returns True if the media became ready,
    None if the job was not running any more."""
    now = time.time()
    state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
    if state is None or state[0] != JobState.RUNNING.value:
        return None  # finished already (a stop raced a finish)
    moved: list[Output] = []
    try:
        for out in outputs:
            if out.src.exists():
                _make_dir_durable(out.dst.parent)
                os.replace(out.src, out.dst)
                moved.append(out)
        for directory in {out.dst.parent for out in moved}:
            fsync_dir(directory)  # the renames are durable before the rows commit
        for out in outputs:
            conn.execute(
                "INSERT INTO files (media_id, role, path, mime, size, sha256, width, height,"
                " duration, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (media_id, role) DO UPDATE SET path = excluded.path,"
                " mime = excluded.mime, size = excluded.size, sha256 = excluded.sha256,"
                " width = excluded.width, height = excluded.height,"
                " duration = excluded.duration, created_at = excluded.created_at,"
                " verified_at = NULL",
                (
                    job.media_id,
                    out.role,
                    site.relative(out.dst),
                    out.mime,
                    out.size,
                    out.sha256,
                    out.width,
                    out.height,
                    out.duration,
                    now,
                ),
            )
        view = job_view(site, job, input_path(conn, site, job))
        follow_ups = media_type.on_done(conn, view, result, settings)
        if follow_ups:
            insert_planned_jobs(conn, job.media_id, follow_ups, max_attempts=settings.max_attempts)
        conn.execute(
            "UPDATE jobs SET state = 'done', reason = NULL, exit_code = 0, progress = 1,"
            " finished_at = ?, pid = NULL, pid_start = NULL, boot_id = NULL WHERE id = ?",
            (now, job.id),
        )
        return mark_ready_if_unblocked(conn, job.media_id, now)
    except BaseException:
        for out in moved:  # the rows roll back: put the files back where a retry finds them
            os.replace(out.dst, out.src)
        raise


def _make_dir_durable(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        fsync_dir(path.parent)


def settle_original(conn: sqlite3.Connection, site: Site, media_id: str) -> bool:
    """Move a media's raw original from queue/ to originals/ once it is ready and no job of it
    is queued or running. Idempotent and crash-safe: the file is renamed first (dirs fsynced),
    then the row follows; a rerun after a crash in between only fixes the row. Returns True
    when the row now points into originals/ because of this call.

    Run inside a write transaction: `await store.write(settle_original, site, media_id)`.
    """
    row = conn.execute(
        "SELECT files.id, files.path FROM files JOIN media ON media.id = files.media_id"
        " WHERE files.media_id = ? AND files.role = 'original' AND media.state = 'ready'",
        (media_id,),
    ).fetchone()
    if row is None or not row["path"].startswith("queue/"):
        return False
    busy = conn.execute(
        "SELECT count(*) FROM jobs WHERE media_id = ? AND state IN ('queued', 'running')",
        (media_id,),
    ).fetchone()[0]
    if busy:
        return False
    src = site.path(row["path"])
    relative = "originals/" + row["path"].removeprefix("queue/")
    dst = site.path(relative)
    if src.exists():
        move_durable(src, dst)
        if src.parent != site.queue:  # queue/<media-id>/original.jpg: drop the empty dir
            with contextlib.suppress(OSError):
                src.parent.rmdir()
    elif not dst.exists():
        return False  # missing altogether: fsck reports it
    else:
        fsync_dir(dst.parent)
    conn.execute("UPDATE files SET path = ? WHERE id = ?", (relative, row["id"]))
    return True


async def finish_job(
    store: Store,
    site: Site,
    settings: Settings,
    types: Mapping[str, MediaType],
    job: JobRow,
    status: Status | None,
    *,
    event: Event | None = None,
) -> Job:
    """Finish `job` from its status (None: the process left none). `event` overrides what the
    status says for a non-successful end (StoppedByUs, or Vanished(counted=False))."""
    jobdir = JobDir(site.jobs / str(job.id))
    if status is not None and status.ok:
        try:
            result, outputs = await trio.to_thread.run_sync(gather_outputs, site, job, jobdir)
            media_type = media_type_for(types, job)
            ready = await store.write(
                commit_success, site, job, outputs, result, media_type, settings
            )
        except (FileNotFoundError, NoMediaType) as e:
            event = Failed(str(e), bad_input=isinstance(e, NoMediaType))
        except Exception as e:
            if not is_disk_full(e):
                log.exception("job=%s finishing failed", job.id)
                event = Failed(f"finishing failed: {type(e).__name__}: {e}")
            else:  # the moves were undone and nothing committed: run it again later
                log.warning("job=%s finishing failed: disk full; requeued", job.id)
                event = NoSpace()
        else:
            if ready is not None:
                log.info("job=%s step=%s done media=%s ready=%s", job.id, job.step, job.media_id,
                         ready)  # fmt: skip
            await _settle_unless_full(store, site, job.media_id)
            await trio.to_thread.run_sync(jobdir.remove)
            return dataclasses.replace(job.machine, state=JobState.DONE, reason=None)
    [after] = await finish_failures(store, site, settings, [(job, status, event)])
    return after


Failure = tuple[JobRow, Status | None, Event | None]
_NOT_THE_JOBS_FAULT = (StoppedByUs, Vanished, NoSpace)


async def _settle_unless_full(store: Store, site: Site, media_id: str) -> None:
    with postponed_if_full(f"media={media_id} original stays in queue/ for now"):
        await store.write(settle_original, site, media_id)


def _prepare_failures(
    site: Site, items: list[Failure], margin_bytes: int
) -> list[tuple[JobRow, Event, list[str]]]:
    disk_low = low_on_space(site.content, margin_bytes)
    prepared = []
    for job, status, event in items:
        jobdir = JobDir(site.jobs / str(job.id))
        tail = jobdir.log_tail()
        if event is None:
            event = failure_event(jobdir, status, tail, disk_low=disk_low)
        prepared.append((job, event, tail))
        jobdir.clear_outputs()
    return prepared


def _apply_failures(
    conn: sqlite3.Connection,
    site: Site,
    prepared: list[tuple[JobRow, Event, list[str]]],
    statuses: list[Status | None],
    backoff: Backoff,
) -> list[Job]:
    results = []
    for (job, event, tail), status in zip(prepared, statuses, strict=True):
        after = apply_event(
            conn,
            job,
            event,
            backoff=backoff,
            log_tail=tail,
            exit_code=None if status is None else status.exit_code,
        )
        if after.state is JobState.FAILED:
            # Settling is crash-safe and redone by GC: a full disk only postpones it.
            with postponed_if_full(f"media={job.media_id} original stays in queue/ for now"):
                settle_original(conn, site, job.media_id)  # a non-blocking job may end it
        results.append(after)
    return results


async def finish_failures(
    store: Store, site: Site, settings: Settings, items: list[Failure]
) -> list[Job]:
    """The failure path for many jobs at once, in ONE write transaction (a reconcile after a
    crash may have hundreds): delete partial outputs, record reason and log tail, requeue with
    backoff or fail (and the media with it)."""
    backoff = Backoff(settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
    margin = settings.jobs_min_free_bytes
    prepared = await trio.to_thread.run_sync(_prepare_failures, site, items, margin)
    statuses = [status for _, status, _ in items]
    results = await store.write(_apply_failures, site, prepared, statuses, backoff)
    for (job, event, _), after in zip(prepared, results, strict=True):
        log.log(
            logging.INFO if isinstance(event, _NOT_THE_JOBS_FAULT) else logging.WARNING,
            "job=%s step=%s media=%s %s -> %s attempt=%d/%d reason=%s",
            job.id,
            job.step,
            job.media_id,
            type(event).__name__,
            after.state.value,
            after.attempt,
            after.max_attempts,
            after.reason,
        )
    await trio.to_thread.run_sync(_remove_dirs, site, [job for job, _, _ in items])
    return results


def _remove_dirs(site: Site, jobs: list[JobRow]) -> None:
    for job in jobs:
        JobDir(site.jobs / str(job.id)).remove()

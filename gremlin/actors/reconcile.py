"""Start-up reconcile: the same after a clean stop, a crash, an upgrade or a reboot.

For each job recorded as running:
- no pid recorded: the pid file tells (the server may have died between launch and record);
  no pid file at all: the launch never happened; we mark the directory abandoned so that a late
  runner cannot start, and requeue without charging an attempt;
- the recorded process is alive and ours (same boot id, same start time): adopt it, to be
  watched by the very code that watches fresh jobs;
- otherwise it is gone: a status file finishes the job from it; without one the job is lost:
  after a reboot (another boot id) that is not the job's fault and charges nothing, otherwise
  it counts as a failed attempt. An unrelated process now holding the pid is never adopted.
Queued jobs simply run later.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Mapping

import trio

from ..media.base import MediaType
from ..proc import ProcessId, boot_id
from ..settings import Settings
from ..store import Site, Store
from ..store.job_queries import JobRow, record_pid, running_jobs
from .finish import Failure, finish_failures, finish_job
from .jobfiles import JobDir, Status, abandon
from .jobstate import Vanished

log = logging.getLogger(__name__)

NEVER_STARTED = "requeued: the server stopped before the job process started"
LOST_IN_REBOOT = "requeued: the machine restarted while it ran"


BATCH = 200  # failures recorded per write transaction


def _classify(
    site: Site, jobs: list[JobRow]
) -> tuple[list[JobRow], list[tuple[JobRow, Status]], list[Failure], list[tuple[int, ProcessId]]]:
    """Sort running jobs into adopt / finish from a good status / failures; and pids found in
    pid files for rows that had none. File system only: one trip to a thread for them all."""
    adopt: list[JobRow] = []
    succeeded: list[tuple[JobRow, Status]] = []
    failures: list[Failure] = []
    found: list[tuple[int, ProcessId]] = []
    me_boot = boot_id()
    for job in jobs:
        jobdir = JobDir(site.jobs / str(job.id))
        process = job.process
        if process is None:
            process = abandon(jobdir)
            if process is None:
                failures.append((job, None, Vanished(counted=False, reason=NEVER_STARTED)))
                continue
            found.append((job.id, process))
            job = dataclasses.replace(job, process=process)
        if process.alive():
            adopt.append(job)
            continue
        status = jobdir.read_status()
        if status is not None and status.ok:
            succeeded.append((job, status))
        elif status is None and process.boot != me_boot:
            failures.append((job, None, Vanished(counted=False, reason=LOST_IN_REBOOT)))
        else:
            failures.append((job, status, None))
    return adopt, succeeded, failures, found


def _record_pids(conn: sqlite3.Connection, found: list[tuple[int, ProcessId]]) -> None:
    for job_id, process in found:
        record_pid(conn, job_id, process)


async def run_reconcile(
    store: Store, site: Site, settings: Settings, types: Mapping[str, MediaType]
) -> list[JobRow]:
    """Settle every job recorded as running; return those still alive (to adopt)."""
    jobs = await store.read(running_jobs)
    if not jobs:
        return []
    adopt, succeeded, failures, found = await trio.to_thread.run_sync(_classify, site, jobs)
    if found:
        await store.write(_record_pids, found)
    for job in adopt:
        assert job.process is not None
        log.info("job=%s adopted pid=%d", job.id, job.process.pid)
    for job, status in succeeded:
        await finish_job(store, site, settings, types, job, status)
    for i in range(0, len(failures), BATCH):
        await finish_failures(store, site, settings, failures[i : i + BATCH])
    log.info(
        "reconciled adopted=%d finished=%d requeued_or_failed=%d",
        len(adopt),
        len(succeeded),
        len(failures),
    )
    return adopt

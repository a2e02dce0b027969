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
from collections.abc import Mapping

import trio

from ..media.base import MediaType
from ..proc import boot_id
from ..settings import Settings
from ..store import Site, Store
from ..store.job_queries import JobRow, record_pid, running_jobs
from .finish import finish_job
from .jobfiles import JobDir, abandon
from .jobstate import Vanished

log = logging.getLogger(__name__)

NEVER_STARTED = "requeued: the server stopped before the job process started"
LOST_IN_REBOOT = "requeued: the machine restarted while it ran"


async def run_reconcile(
    store: Store, site: Site, settings: Settings, types: Mapping[str, MediaType]
) -> list[JobRow]:
    """Settle every job recorded as running; return those still alive (to adopt)."""
    adopted: list[JobRow] = []
    finished = 0
    for job in await store.read(running_jobs):
        jobdir = JobDir(site.jobs / str(job.id))
        process = job.process
        if process is None:
            process = await trio.to_thread.run_sync(abandon, jobdir)
            if process is None:
                event = Vanished(counted=False, reason=NEVER_STARTED)
                await finish_job(store, site, settings, types, job, None, event=event)
                finished += 1
                continue
            await store.write(record_pid, job.id, process)
            job = dataclasses.replace(job, process=process)
        if process.alive():
            log.info("job=%s adopted pid=%d", job.id, process.pid)
            adopted.append(job)
            continue
        status = await trio.to_thread.run_sync(jobdir.read_status)
        if status is None and process.boot != boot_id():
            event = Vanished(counted=False, reason=LOST_IN_REBOOT)
            await finish_job(store, site, settings, types, job, None, event=event)
        else:
            await finish_job(store, site, settings, types, job, status)
        finished += 1
    if adopted or finished:
        log.info("reconciled adopted=%d finished=%d", len(adopted), finished)
    return adopted

"""The job supervisor: runs queued jobs, one child task per running job.

    serve_jobs
    ├── (reconcile)  adopt live jobs of an earlier server, finish or requeue the dead
    ├── job-<id>     launch (fork server or runner) -> record pid -> pidfd + status -> finish
    └── ...          at most settings.effective_jobs_concurrency() job processes at once
                     (a job whose process has exited is finished without holding a slot)

It wakes when `runtime.jobs_changed` is set (an upload, a retry), when one of its jobs ends,
when the next backoff expires, when another process commits (`gremlin import` inserts jobs;
seen through PRAGMA data_version every 50 ms), or every `poll_seconds`. A plain stop
(cancellation) stops our job processes and requeues their jobs without charging an attempt.
When `runtime.keep_jobs_running` (an upgrade handing over) or after a crash of this actor,
job processes are left running for the next supervisor to adopt.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from ..media.base import MediaType
from ..proc import ProcessId
from ..runtime import Runtime
from ..settings import Settings
from ..store import Site, Store, connect
from ..store.job_queries import JobRow, claim_due_jobs, next_due, record_pid
from .diskspace import Gate, is_disk_full, low_on_space, postponed_if_full, retry_on_full_disk
from .finish import finish_job, input_path, job_view, media_type_for
from .jobfiles import JobDir, Status, abandon, abandon_unless_full, write_json_atomic
from .jobstate import Event, Failed, NoSpace, StoppedByUs
from .launch import Launcher, LaunchFailed, open_launcher
from .reconcile import run_reconcile
from .watch import kill_group_now, stop_process, wait_exit

log = logging.getLogger(__name__)

COMMIT_WATCH_SECONDS = 0.05  # how often to look for jobs inserted by another process


@dataclasses.dataclass
class _State:
    # A job holds one of the `jobs_concurrency` slots while its process starts and runs; once
    # the process has exited, the slot is free for the next job while this one is finished
    # (outputs hashed and moved, one transaction): that is I/O and little CPU, off the path.
    running: dict[int, JobRow] = dataclasses.field(default_factory=dict)
    finishing: dict[int, JobRow] = dataclasses.field(default_factory=dict)
    wake: trio.Event = dataclasses.field(default_factory=trio.Event)
    looked: trio.Event = dataclasses.field(default_factory=trio.Event)  # set after each claim
    leave_running: bool = False

    def release(self, job: JobRow) -> None:
        """`job`'s process is gone: its slot is free (the supervisor wakes to fill it)."""
        if self.running.pop(job.id, None) is not None:
            self.finishing[job.id] = job
            self.wake.set()


class _CannotRun(Exception):
    pass


def build_spec(
    conn: sqlite3.Connection,
    site: Site,
    settings: Settings,
    types: Mapping[str, MediaType],
    job: JobRow,
) -> dict[str, Any]:
    """What the runner runs for `job` (JOBDIR/spec.json)."""
    try:
        media_type = media_type_for(types, job)
        source = input_path(conn, site, job)
        command = media_type.command(job_view(site, job, source), settings)
    except Exception as e:
        raise _CannotRun(f"cannot prepare {job.step}: {type(e).__name__}: {e}") from e
    return {
        "job_id": job.id,
        "media_id": job.media_id,
        "step": job.step,
        "input": str(source),
        "argv": list(command.argv),
        "python": command.python,
        "kwargs": dict(command.kwargs),
        "duration_seconds": command.duration_seconds,
        "nice": settings.jobs_nice,
        "kill_grace_seconds": settings.kill_grace_seconds,
        "min_free_bytes": settings.jobs_min_free_bytes,
    }


def preload_modules(types: Mapping[str, MediaType]) -> list[str]:
    """Modules the fork server imports up front: each type's module, and the worker modules
    a type lists in an optional `preload` attribute (the fork server also learns on use)."""
    names = set()
    for media_type in types.values():
        names.add(type(media_type).__module__)
        names.update(getattr(media_type, "preload", ()))
    return sorted(names - {"builtins", "__main__"})


async def serve_jobs(
    runtime: Runtime,
    types: Mapping[str, MediaType],
    *,
    fork_server: bool = True,
    poll_seconds: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    store, site, settings = runtime.store, runtime.site, runtime.settings
    limit = settings.effective_jobs_concurrency()
    state = _State()
    preload = preload_modules(types)

    watcher = await trio.to_thread.run_sync(_CommitWatcher, site.db)
    space = Gate(site.content, settings.jobs_min_free_bytes)  # a full disk pauses launching

    def leave_running() -> bool:
        return state.leave_running or runtime.keep_jobs_running

    async with (
        open_launcher(fork_server=fork_server, preload=preload) as launcher,
        trio.open_nursery() as nursery,
    ):
        task_status.started()

        def start(job: JobRow, adopted: bool) -> None:
            state.running[job.id] = job
            nursery.start_soon(
                _job_task, store, site, settings, types, launcher, state, job, adopted,
                leave_running, nursery, name=f"job-{job.id}",
            )  # fmt: skip

        try:
            for job in await retry_on_full_disk(
                lambda _: run_reconcile(store, site, settings, types), what="jobs reconcile"
            ):  # reconcile is idempotent: redone whole once there is space
                start(job, True)
            while True:
                free = limit - len(state.running)
                due = await store.read(next_due)
                if free > 0 and due is not None and due <= time.time() and space.open():
                    try:
                        claimed = await store.write(claim_due_jobs, time.time(), free)
                    except Exception as e:
                        if not is_disk_full(e):
                            raise
                        space.pause("the database cannot grow")
                        claimed = []
                    for job in claimed:
                        start(job, False)
                    due = await store.read(next_due)
                timeout = poll_seconds
                if due is not None and len(state.running) < limit and not space.paused:
                    timeout = min(poll_seconds, max(0.0, due - time.time()) + 0.01)
                state.looked.set()
                state.looked = trio.Event()
                await _wait_for_work(runtime, state, watcher, timeout)
                if runtime.jobs_changed.is_set():
                    runtime.jobs_changed = trio.Event()
                if state.wake.is_set():
                    state.wake = trio.Event()
        except Exception:
            state.leave_running = True  # a crash of ours is not a stop: adopt them later
            raise
        finally:
            watcher.close()


class _CommitWatcher:
    """Notices commits by other processes (`gremlin import`) through PRAGMA data_version, which
    changes when another connection commits: a cheap look at the WAL index, no query."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        self._version = self._read()

    def _read(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        version = self._read()
        changed, self._version = version != self._version, version
        return changed

    def close(self) -> None:
        self._conn.close()


async def _wait_for_work(
    runtime: Runtime, state: _State, watcher: _CommitWatcher, timeout: float
) -> None:
    """Until a nudge, the end of one of our jobs, another process's commit, or `timeout`."""
    deadline = trio.current_time() + timeout
    while (remaining := deadline - trio.current_time()) > 0:
        with trio.move_on_after(min(COMMIT_WATCH_SECONDS, remaining)):
            await _wait_either(runtime.jobs_changed, state.wake)
            return
        if await trio.to_thread.run_sync(watcher.changed):
            return


async def _wait_either(a: trio.Event, b: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        for event in (a, b):

            async def wait(event: trio.Event = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


async def _job_task(
    store: Store,
    site: Site,
    settings: Settings,
    types: Mapping[str, MediaType],
    launcher: Launcher,
    state: _State,
    job: JobRow,
    adopted: bool,
    leave_running: Any,
    background: trio.Nursery,
) -> None:
    jobdir = JobDir(site.jobs / str(job.id))
    process: ProcessId | None = job.process if adopted else None
    status: Status | None = None

    async def finish(event: Event | None) -> None:
        async def attempt(retrying: bool) -> None:
            # Retried only for a full disk, after the outputs may have been cleared: a
            # success becomes NoSpace (run again), a failure keeps what its status says.
            again = NoSpace() if retrying and status is not None and status.ok else event
            await finish_job(store, site, settings, types, job, status, event=again)

        await retry_on_full_disk(attempt, what=f"job={job.id} finishing")

    try:
        if process is None:
            try:
                spec = await store.read(prepare_job, site, settings, types, job)
            except _CannotRun as e:
                await finish(Failed(str(e)))
                return
            except Exception as e:
                if not is_disk_full(e):
                    raise
                await finish(NoSpace())  # could not even lay out its directory
                return
            try:
                await launcher.launch(jobdir.path, warm_module=spec["python"].partition(":")[0])
            except (LaunchFailed, OSError) as e:
                log.warning("job=%s launch failed: %s", job.id, e)
            process = jobdir.read_pid()
            if process is None:
                process = await trio.to_thread.run_sync(abandon_unless_full, jobdir)
            if process is None:
                event: Event = Failed("could not start the job process (see the server log)")
                if await trio.to_thread.run_sync(
                    low_on_space, site.content, settings.jobs_min_free_bytes
                ):
                    event = NoSpace()
                await finish(event)
                return
            log.info("job=%s step=%s media=%s started pid=%d", job.id, job.step, job.media_id,
                     process.pid)  # fmt: skip
            # The pid file is the record (reconcile reads it while the row has none): the row
            # follows in the background, off the path from start to finish.
            background.start_soon(_record_pid, store, job, process)
        await wait_exit(process)
        kill_group_now(process)  # leftovers of the group (a script's background children)
        state.release(job)
        looked = state.looked
        status = await trio.to_thread.run_sync(jobdir.read_status)
        # Our finishing writes would compete for the one writer connection with the claim of
        # the job that takes our slot: let the supervisor look first (bounded, it never waits
        # for us).
        with trio.move_on_after(1.0):
            await looked.wait()
        await finish(None)
    except BaseException as e:
        if not _only_cancelled(e):
            state.leave_running = True  # a bug or a broken disk: the next start adopts them
        elif not leave_running():
            with trio.move_on_after(2 * settings.kill_grace_seconds + 10, shield=True):
                await _stop_and_requeue(store, site, settings, types, job, jobdir, process)
        raise
    finally:
        state.running.pop(job.id, None)
        state.finishing.pop(job.id, None)
        state.wake.set()


async def _record_pid(store: Store, job: JobRow, process: ProcessId) -> None:
    with postponed_if_full(f"job={job.id} pid not in the database (its pid file has it)"):
        await store.write(record_pid, job.id, process, job.started_at)


def _only_cancelled(e: BaseException) -> bool:
    """A cancellation, possibly wrapped in exception groups by nurseries on the way."""
    if isinstance(e, BaseExceptionGroup):
        return e.split(trio.Cancelled)[1] is None
    return isinstance(e, trio.Cancelled)


def prepare_job(
    conn: sqlite3.Connection,
    site: Site,
    settings: Settings,
    types: Mapping[str, MediaType],
    job: JobRow,
) -> dict[str, Any]:
    """Build the spec and lay out a fresh job directory with it (one trip to a thread)."""
    spec = build_spec(conn, site, settings, types, job)
    jobdir = JobDir(site.jobs / str(job.id))
    jobdir.fresh()
    write_json_atomic(jobdir.spec, spec)
    return spec


async def _stop_and_requeue(
    store: Store,
    site: Site,
    settings: Settings,
    types: Mapping[str, MediaType],
    job: JobRow,
    jobdir: JobDir,
    process: ProcessId | None,
) -> None:
    if process is None:  # stopped while launching: make sure nothing starts, or stop it
        process = await trio.to_thread.run_sync(abandon, jobdir)
    if process is not None:
        await stop_process(process, settings.kill_grace_seconds)
    status = await trio.to_thread.run_sync(jobdir.read_status)
    await finish_job(store, site, settings, types, job, status, event=StoppedByUs())

"""The watchdog: kills a job only when every sign of life has been still for `stall_seconds`.

Signs of life, summed over the job's process group (the runner and its children):
ffmpeg's `-progress` out_time, the bytes in out/, /proc/PID/io rchar + wchar, CPU ticks.
ffmpeg's +faststart pass moves only the I/O counters, and that is enough to live.
A wall-clock cap, max(job_time_min_seconds, job_time_factor * duration), backs it up.
It also records progress (out_time / duration) for the API. Before it signals, it writes
JOBDIR/killed with the reason; the supervisor's finish reads it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from pathlib import Path

import trio

from ..proc import ProcessId, cpu_ticks, io_counters
from ..runtime import Runtime
from ..settings import Settings
from ..store import Store
from ..store.job_queries import JobRow, running_jobs, set_progress
from .diskspace import is_disk_full
from .jobfiles import JobDir, read_progress_seconds, write_json_atomic
from .jobstate import hung_reason
from .watch import signal_group, stop_process

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Liveness:
    progress_seconds: float | None
    output_bytes: int
    io_bytes: int
    cpu_ticks: int


@dataclasses.dataclass
class Tracker:
    """What the watchdog remembers of one running attempt."""

    process: ProcessId
    last: Liveness
    last_change: float  # monotonic
    duration: float | None


def group_pids(pid: int) -> list[int]:
    """`pid` and its descendants (through /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{current}/task/{tid}/children").read_text()
            except OSError:
                continue
            todo.extend(int(c) for c in text.split())
    return found


def sample(process: ProcessId, jobdir: JobDir) -> Liveness:
    io_total = cpu_total = 0
    for pid in group_pids(process.pid):
        io = io_counters(pid)
        if io is not None:
            io_total += io[0] + io[1]
        cpu_total += cpu_ticks(pid) or 0
    return Liveness(
        read_progress_seconds(jobdir.progress), jobdir.output_bytes(), io_total, cpu_total
    )


def progress_fraction(progress_seconds: float | None, duration: float | None) -> float | None:
    if progress_seconds is None or not duration or duration <= 0:
        return None
    return max(0.0, min(1.0, progress_seconds / duration))


def time_cap(settings: Settings, duration: float | None) -> float:
    return max(settings.job_time_min_seconds, settings.job_time_factor * (duration or 0.0))


def _spec_duration(jobdir: JobDir) -> float | None:
    try:
        value = jobdir.read_spec().get("duration_seconds")
    except (OSError, ValueError):
        return None
    return float(value) if value else None


async def serve_watchdog(
    runtime: Runtime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    store, site, settings = runtime.store, runtime.site, runtime.settings
    trackers: dict[int, Tracker] = {}
    killing: set[tuple[int, int]] = set()
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            jobs = [j for j in await store.read(running_jobs) if j.process is not None]
            samples = await trio.to_thread.run_sync(_sample_all, site.jobs, jobs, trackers)
            now = trio.current_time()
            for job in jobs:
                assert job.process is not None
                liveness, duration = samples[job.id]
                tracker = trackers.get(job.id)
                if tracker is None or tracker.process != job.process:
                    trackers[job.id] = Tracker(job.process, liveness, now, duration)
                    continue
                if liveness != tracker.last:
                    tracker.last, tracker.last_change = liveness, now
                fraction = progress_fraction(liveness.progress_seconds, tracker.duration)
                if fraction is not None and abs(fraction - job.progress) >= 0.005:
                    await _record_progress(store, job.id, fraction)
                key = (job.id, job.process.pid)
                if key in killing:
                    continue
                stalled = now - tracker.last_change
                ran = time.time() - (job.started_at or time.time())
                cap = time_cap(settings, tracker.duration)
                if stalled >= settings.stall_seconds:
                    mark = {"hung_seconds": round(stalled), "reason": hung_reason(stalled)}
                elif ran >= cap:
                    mark = {"reason": f"timed out: ran {ran:.0f} s, the cap is {cap:.0f} s"}
                else:
                    continue
                killing.add(key)
                nursery.start_soon(_kill, job, site.jobs, mark, settings)
            running = {job.id for job in jobs}
            for job_id in list(trackers):
                if job_id not in running:
                    del trackers[job_id]
            killing.intersection_update((job.id, job.process.pid) for job in jobs if job.process)
            await trio.sleep(settings.watchdog_poll_seconds)


async def _record_progress(store: Store, job_id: int, fraction: float) -> None:
    """Progress is for show: on a full disk it is skipped (no line per poll), never fatal."""
    try:
        await store.write(set_progress, job_id, fraction)
    except Exception as e:
        if not is_disk_full(e):
            raise


def _sample_all(
    jobs_root: Path, jobs: list[JobRow], trackers: dict[int, Tracker]
) -> dict[int, tuple[Liveness, float | None]]:
    out = {}
    for job in jobs:
        assert job.process is not None
        jobdir = JobDir(jobs_root / str(job.id))
        tracker = trackers.get(job.id)
        known = tracker is not None and tracker.process == job.process
        duration = tracker.duration if known and tracker else _spec_duration(jobdir)
        out[job.id] = (sample(job.process, jobdir), duration)
    return out


async def _kill(
    job: JobRow,
    jobs_root: Path,
    mark: dict[str, object],
    settings: Settings,
) -> None:
    assert job.process is not None
    jobdir = JobDir(jobs_root / str(job.id))
    log.warning("job=%s pid=%d killing: %s", job.id, job.process.pid, mark["reason"])
    try:
        await trio.to_thread.run_sync(write_json_atomic, jobdir.killed, mark)
    except OSError as e:
        if not is_disk_full(e):
            return  # its directory is gone: the job has just finished
        log.warning("job=%s no room for the kill mark (disk full): killing it anyway", job.id)
    await stop_process(job.process, settings.kill_grace_seconds)
    signal_group(job.process, signal.SIGKILL)  # whatever of the group is left

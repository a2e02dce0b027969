"""A full disk is an environmental condition: reported as such, never charged to the job,
pausing launches, and recovered from once there is space again.

The tests marked `tmpfs` run the engine on a small tmpfs (needs root for `mount -t tmpfs`; they
skip with the reason otherwise); the rest inject ENOSPC at a boundary.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from gremlin.actors import diskspace, fsck_background, watchdog
from gremlin.actors import finish as finish_module
from gremlin.actors.diskspace import free_bytes
from gremlin.actors.jobfiles import LOG_RESERVE_BYTES, JobDir, StatusWriter, log_tail
from gremlin.errors import DiskFull
from gremlin.media.base import PlannedJob
from gremlin.settings import Settings, load
from gremlin.store import Site, init_site

from .fakes import FakeType, add_media, job_rows, media_row, media_state, script, wait_for

THUMB = PlannedJob(step="thumb", outputs={"thumb": "thumb.txt"})
INFO = PlannedJob(step="probe", outputs={"info": "info.json"})
MiB = 1024 * 1024
REASON = "no space left on device"


def _mount_tmpfs(where: Path, size_mib: int) -> str | None:
    """Mount a tmpfs; None if it worked, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else f"mount -t tmpfs failed: {done.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    why = _mount_tmpfs(disk, 24)
    if why:
        pytest.skip(why)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def small_site(small_disk: Path) -> Site:
    return init_site(small_disk / "site")


def fill(site: Site, leave_bytes: int) -> Path:
    """A ballast file that leaves about `leave_bytes` free on the site's disk."""
    ballast = site.root / "ballast"
    size = max(0, free_bytes(site.content) - leave_bytes)
    with open(ballast, "wb") as f:
        f.write(b"\0" * size)
    return ballast


def fast_settings(site: Site, **changes: object) -> Settings:
    base = load(site.root, {"bind": "127.0.0.1:0"}, environ={})
    return dataclasses.replace(
        base,
        stall_seconds=5.0,
        watchdog_poll_seconds=0.1,
        retry_backoff_seconds=0.05,
        retry_backoff_max_seconds=0.2,
        kill_grace_seconds=1.0,
        jobs_concurrency=1,
        jobs_nice=0,
        jobs_min_free_bytes=2 * MiB,
        **changes,
    )


def test_status_is_written_from_its_reserve_on_a_full_disk(small_site: Site) -> None:
    jobdir = JobDir(small_site.jobs / "1")
    jobdir.fresh()
    writer = StatusWriter(jobdir)
    assert writer.reserve_space()
    fill(small_site, 0)
    with pytest.raises(OSError) as full:  # the disk really is full
        (small_site.content / "one-more").write_bytes(b"x" * 8192)
    assert full.value.errno == errno.ENOSPC
    writer.write({"exit_code": 1, "signal": None, "finished_at": 5.0, "no_space": True})
    status = jobdir.read_status()
    assert status is not None and (status.exit_code, status.no_space) == (1, True)
    assert not writer.reserve.exists()


def test_no_reserve_on_a_full_disk_means_no_status(small_site: Site) -> None:
    jobdir = JobDir(small_site.jobs / "1")
    jobdir.fresh()
    fill(small_site, 0)
    assert not StatusWriter(jobdir).reserve_space()
    assert not (jobdir.path / ".status.reserve").exists()


FILL_BODY = (
    "n = runs('filler')\n"
    "try:\n"
    "    with open(out / 'thumb.txt', 'wb') as f:\n"
    "        f.write(b'x' * (8 << 20))\n"
    "        f.flush(); os.fsync(f.fileno())\n"
    "except OSError as e:\n"
    "    print('av_interleaved_write_frame():', e, file=sys.stderr); sys.exit(1)\n"
)


async def test_a_job_that_fills_the_disk_is_requeued_uncharged_then_succeeds(
    small_site: Site, engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = small_site
    settings = fast_settings(site)
    ballast = fill(site, 5 * MiB)  # room to launch (margin 2 MiB), not for its 8 MiB output
    fake = FakeType({"thumb": script(tmp_path, "filler", FILL_BODY)})
    media_id = add_media(site, [THUMB], max_attempts=1)  # one charged failure would fail it
    runs = tmp_path / "filler.runs"
    caplog.set_level(logging.INFO)
    async with engine(settings, {"fake": fake}):
        await wait_for(lambda: runs.exists() and int(runs.read_text()) >= 2, what="a rerun")
        [job] = job_rows(site, media_id)
        assert media_row(site, media_id)["state"] == "processing"
        assert job["reason"] == REASON
        assert job["state"] in ("queued", "running") and job["attempt"] <= 1
        # Its own words made it into the log's preallocated reserve although the disk was full.
        assert "No space left on device" in job["log_tail"]
        ballast.unlink()
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=60)
    assert media_row(site, media_id)["state"] == "ready"
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["reason"]) == ("done", 1, None)
    assert (site.media / media_id / "thumb.txt").stat().st_size == 8 << 20
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks for a full disk"
    assert not [r for r in caplog.records if "vanished" in r.getMessage()]


async def test_launching_pauses_while_the_disk_is_full_and_resumes(
    small_site: Site, engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = small_site
    settings = fast_settings(site)
    ballast = fill(site, 1 * MiB)  # below the 2 MiB margin
    ok = "runs('ok')\n(out / 'thumb.txt').write_text('thumb')\n"
    fake = FakeType({"thumb": script(tmp_path, "ok", ok)})
    media_id = add_media(site, [THUMB], max_attempts=1)
    caplog.set_level(logging.INFO)

    def paused() -> bool:
        return any("jobs paused: disk full" in r.getMessage() for r in caplog.records)

    async with engine(settings, {"fake": fake}):
        await wait_for(paused, what="the pause line")
        assert not (tmp_path / "ok.runs").exists()  # nothing launched while full
        [job] = job_rows(site, media_id)
        assert (job["state"], job["attempt"]) == ("queued", 0)
        ballast.unlink()
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=60)
    assert media_row(site, media_id)["state"] == "ready"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("jobs paused" in m for m in messages) == 1
    assert sum("jobs resumed" in m for m in messages) == 1
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_python_worker_hitting_enospc_is_not_charged(
    site: Site, fast: Settings, engine
) -> None:
    fake = FakeType({}, python={"probe": "tests.actors.workers:full_disk_once"})
    media_id = add_media(site, [INFO], max_attempts=1)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert media_row(site, media_id)["state"] == "ready"
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)
    assert (site.queue / f"{media_id}.bin.runs").read_text() == "2"  # ran twice, charged once


async def test_enospc_while_moving_outputs_leaves_things_consistent_and_retries(
    site: Site, fast: Settings, engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = "runs('ok')\n(out / 'thumb.txt').write_text('thumb')\n"
    fake = FakeType({"thumb": script(tmp_path, "ok", ok)})
    media_id = add_media(site, [THUMB], max_attempts=1)
    real = finish_module._make_dir_durable
    failures: list[Path] = []

    def full_once(path: Path) -> None:
        if not failures:
            failures.append(path)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path)

    monkeypatch.setattr(finish_module, "_make_dir_durable", full_once)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert failures == [site.media / media_id]
    assert media_row(site, media_id)["state"] == "ready"
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)
    assert (tmp_path / "ok.runs").read_text() == "2"
    assert (site.media / media_id / "thumb.txt").read_text() == "thumb"
    assert not (site.jobs / str(job["id"])).exists()


class _Stop(Exception):
    pass


async def test_background_fsck_skips_slices_while_the_disk_is_full(
    autojump_clock: trio.testing.MockClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    async def slice_(store: object, site: object, settings: object) -> object:
        calls.append(trio.current_time())
        if len(calls) <= 3:
            raise DiskFull("/site/content/site.db")
        raise _Stop

    monkeypatch.setattr(fsck_background, "run_background_slice", slice_)
    on = dataclasses.replace(settings, fsck_budget_seconds_per_day=60.0)
    with pytest.raises(_Stop):  # only the unexpected error ends it, not the full disk
        await fsck_background.serve_fsck(None, None, on, first_delay_seconds=0)  # type: ignore[arg-type]
    assert len(calls) == 4 and calls[3] - calls[0] >= 3 * 60 - 1
    skipped = [r for r in caplog.records if "skipped: disk full" in r.getMessage()]
    assert len(skipped) == 3 and not any(r.exc_info for r in caplog.records)


async def test_watchdog_progress_is_skipped_on_a_full_disk_but_other_errors_raise() -> None:
    class FullStore:
        def __init__(self, error: Exception) -> None:
            self.error = error

        async def write(self, *args: object) -> None:
            raise self.error

    await watchdog._record_progress(FullStore(DiskFull("/x")), 1, 0.5)  # type: ignore[arg-type]
    full_db = sqlite3.OperationalError("database or disk is full")
    await watchdog._record_progress(FullStore(full_db), 1, 0.5)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError):
        await watchdog._record_progress(  # type: ignore[arg-type]
            FullStore(sqlite3.OperationalError("no such table: jobs")), 1, 0.5
        )


def test_disk_full_hint_is_general_unless_told() -> None:
    assert "upload" not in (DiskFull("/site/content").hint or "")
    assert DiskFull("/x", hint=DiskFull.UPLOAD_HINT).hint == DiskFull.UPLOAD_HINT


def test_gate_logs_one_line_to_pause_and_one_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    free = [10 * MiB]
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: free[0])
    gate = diskspace.Gate(tmp_path, 2 * MiB)
    assert gate.open()
    free[0] = MiB
    assert [gate.open() for _ in range(5)] == [False] * 5
    free[0] = 3 * MiB
    assert gate.open() and gate.open()
    gate.pause("the database cannot grow", hold_seconds=60)  # a write failed anyway
    assert not gate.open()  # held shut although free space looks fine
    lines = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in lines] == ["jobs paused", "jobs resumed", "jobs paused"]


def test_log_tail_reads_past_the_unused_log_reserve(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"starting\nboom: No space left on device\n" + b"\0" * LOG_RESERVE_BYTES)
    assert log_tail(log) == ["starting", "boom: No space left on device"]


async def test_a_finish_that_cannot_be_written_is_retried_once_there_is_space(
    site: Site,
    fast: Settings,
    engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeType({}, python={"probe": "tests.actors.workers:full_disk_once"})
    media_id = add_media(site, [INFO], max_attempts=1)
    real = finish_module._apply_failures
    refused: list[int] = []

    def full_db(conn: sqlite3.Connection, site: Site, prepared, *args: object) -> object:
        if not refused:
            refused.append(prepared[0][0].id)
            raise DiskFull(str(site.db))  # what store.write makes of SQLITE_FULL
        return real(conn, site, prepared, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(finish_module, "_apply_failures", full_db)
    caplog.set_level(logging.INFO)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert media_row(site, media_id)["state"] == "ready"
    [job] = job_rows(site, media_id)
    assert refused == [job["id"]] and (job["state"], job["attempt"]) == ("done", 1)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("disk full; retrying until there is space" in m for m in messages) == 1
    assert sum("went through now that there is space" in m for m in messages) == 1
    assert not [r for r in caplog.records if r.exc_info]

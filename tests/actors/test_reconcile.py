"""Reconcile at start-up, and a plain stop: adopt, reap, requeue; never adopt a stranger."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from gremlin.media.base import PlannedJob
from gremlin.proc import BOOT_ID_ENV, ProcessId
from gremlin.settings import Settings
from gremlin.store import Site, connect

from .fakes import FakeType, add_media, job_rows, media_row, media_state, script, wait_for

THUMB = PlannedJob(step="thumb", outputs={"thumb": "thumb.txt"})
# Keeps writing (so the watchdog sees it alive) until the test opens the gate.
GATED = (
    "runs('gated')\n"
    "with open(out / 'thumb.txt', 'w') as f:\n"
    "    while not (here / 'gate').exists():\n"
    "        f.write('.'); f.flush(); time.sleep(0.1)\n"
    "    f.write(' by ' + str(os.getppid()))\n"  # the runner: the recorded process
)


def gated(tmp_path: Path) -> FakeType:
    return FakeType({"thumb": script(tmp_path, "gated", GATED)})


def running_process(site: Site, media_id: str) -> ProcessId | None:
    [job] = job_rows(site, media_id)
    if job["state"] != "running" or job["pid"] is None:
        return None
    return ProcessId(job["pid"], job["pid_start"], job["boot_id"])


async def leave_running(engine, settings: Settings, fake: FakeType, site: Site, media_id: str):
    """Run the supervisor until the job runs, then tear it down as a handover/crash would."""
    async with engine(settings, {"fake": fake}) as runtime:
        process = await wait_for(lambda: running_process(site, media_id), what="job running")
        [job] = job_rows(site, media_id)
        started = site.jobs / str(job["id"]) / "out" / "thumb.txt"
        await wait_for(started.exists, what="the script under way")
        runtime.handed_over = True  # keep_jobs_running: do not stop the transcoders
    assert process.alive() and job_rows(site, media_id)[0]["state"] == "running"
    return process


def kill_group(process: ProcessId) -> None:
    os.killpg(process.pid, signal.SIGKILL)


async def test_live_job_is_adopted_and_finishes_without_a_new_attempt(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = gated(tmp_path)
    media_id = add_media(site, [THUMB])
    process = await leave_running(engine, fast, fake, site, media_id)
    async with engine(fast, {"fake": fake}):
        await wait_for(lambda: running_process(site, media_id) == process, what="adopted")
        (tmp_path / "gate").touch()
        await wait_for(media_state(site, media_id, "ready", "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)
    assert (tmp_path / "gated.runs").read_text() == "1"
    assert (site.media / media_id / "thumb.txt").read_text().endswith(f" by {process.pid}")


async def test_job_that_finished_while_no_server_ran_is_reaped_from_its_status_file(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = gated(tmp_path)
    media_id = add_media(site, [THUMB])
    [job] = job_rows(site, media_id)
    process = await leave_running(engine, fast, fake, site, media_id)
    (tmp_path / "gate").touch()
    status = site.jobs / str(job["id"]) / "status"
    await wait_for(status.exists, what="status file")
    await wait_for(lambda: not process.alive(), what="process gone")
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)
    assert (tmp_path / "gated.runs").read_text() == "1"
    assert (site.media / media_id / "thumb.txt").read_text().endswith(f" by {process.pid}")


async def test_unrelated_process_at_the_recorded_pid_is_not_adopted(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = gated(tmp_path)
    media_id = add_media(site, [THUMB])
    process = await leave_running(engine, fast, fake, site, media_id)
    kill_group(process)
    await wait_for(lambda: not process.alive(), what="job killed")
    # A stranger now holds the recorded pid (its start time differs from the recorded one).
    stranger = subprocess.Popen(["sleep", "60"])  # noqa: ASYNC220
    try:
        conn = connect(site.db)
        conn.execute("UPDATE jobs SET pid = ? WHERE media_id = ?", (stranger.pid, media_id))
        conn.close()
        (tmp_path / "gate").touch()
        async with engine(fast, {"fake": fake}):
            await wait_for(media_state(site, media_id, "ready", "failed"))
        assert stranger.poll() is None  # never signalled, never adopted
    finally:
        stranger.kill()
        stranger.wait()
    [job] = job_rows(site, media_id)
    # Gone without a status on the same boot: that counts as a failed attempt.
    assert (job["state"], job["attempt"]) == ("done", 2)
    assert (tmp_path / "gated.runs").read_text() == "2"


async def test_job_lost_in_a_reboot_is_requeued_without_charging_an_attempt(
    site: Site, fast: Settings, engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = gated(tmp_path)
    media_id = add_media(site, [THUMB], max_attempts=1)
    process = await leave_running(engine, fast, fake, site, media_id)
    kill_group(process)  # the machine went down with it
    await wait_for(lambda: not process.alive(), what="job killed")
    monkeypatch.setenv(BOOT_ID_ENV, "a-later-boot")
    (tmp_path / "gate").touch()
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["boot_id"]) == ("done", 1, None)
    assert media_row(site, media_id)["state"] == "ready"  # max_attempts=1 was not used up
    assert (tmp_path / "gated.runs").read_text() == "2"


async def test_plain_stop_stops_transcoders_and_requeues_without_charging(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = gated(tmp_path)
    media_id = add_media(site, [THUMB])
    [job] = job_rows(site, media_id)
    async with engine(fast, {"fake": fake}):
        process = await wait_for(lambda: running_process(site, media_id), what="job running")
    assert not process.alive()
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["pid"]) == ("queued", 0, None)
    assert not (site.jobs / str(job["id"])).exists()
    assert not (site.media / media_id / "thumb.txt").exists()
    assert media_row(site, media_id)["state"] == "processing"
    # The next start runs it again, as its first charged attempt.
    (tmp_path / "gate").touch()
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert job_rows(site, media_id)[0]["attempt"] == 1


async def test_job_whose_launch_never_happened_is_requeued_and_runs(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    """The server died between marking the job running and starting its process."""
    fake = FakeType({"thumb": script(tmp_path, "ok", "(out / 'thumb.txt').write_text('ok')\n")})
    media_id = add_media(site, [THUMB], max_attempts=1)
    conn = connect(site.db)
    conn.execute("UPDATE jobs SET state = 'running', attempt = 1 WHERE media_id = ?", (media_id,))
    conn.close()
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)


async def test_plain_stop_escalates_to_sigkill_for_a_transcoder_ignoring_sigterm(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "import signal\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "(here / 'deaf.pid').write_text(str(os.getpid()))\n"
        "while True: time.sleep(0.1); progress.write_text(str(time.time()))\n"
    )
    fake = FakeType({"thumb": script(tmp_path, "deaf", body)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        process = await wait_for(lambda: running_process(site, media_id), what="job running")
        await wait_for((tmp_path / "deaf.pid").exists, what="the script under way")
    deaf = ProcessId.of(int((tmp_path / "deaf.pid").read_text()))
    assert not process.alive() and (deaf is None or not deaf.alive())
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("queued", 0)

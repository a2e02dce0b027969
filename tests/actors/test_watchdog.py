"""The watchdog kills only what has stopped moving, and records progress."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gremlin.actors.watchdog import Liveness, progress_fraction, time_cap
from gremlin.media.base import PlannedJob
from gremlin.proc import ProcessId, is_zombie
from gremlin.settings import Settings
from gremlin.store import Site

from .fakes import FakeType, add_media, job_rows, media_row, media_state, script, wait_for

THUMB = PlannedJob(step="thumb", outputs={"thumb": "thumb.txt"})
FINISH = "(out / 'thumb.txt').write_text('done')\n"


async def test_hanging_job_is_killed_as_hung_and_retried(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "if runs('hang') == 1:\n"
        "    (here / 'hung.pid').write_text(str(os.getpid()))\n"
        "    time.sleep(600)\n" + FINISH
    )
    fake = FakeType({"thumb": script(tmp_path, "hang", body)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=30)
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 2)
    assert (tmp_path / "hang.runs").read_text() == "2"
    hung = int((tmp_path / "hung.pid").read_text())
    assert ProcessId.of(hung) is None or is_zombie(hung)  # killed, maybe not reaped by pid 1


async def test_hung_on_every_attempt_fails_with_the_hung_reason(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = FakeType({"thumb": script(tmp_path, "stuck", "print('started'); time.sleep(600)\n")})
    media_id = add_media(site, [THUMB], max_attempts=1)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "failed"), timeout=30)
    [job] = job_rows(site, media_id)
    assert job["reason"] == "hung: no progress for 2 s" or job["reason"].startswith("hung: no ")
    assert job["log_tail"] == "started"
    assert media_row(site, media_id)["reason"].startswith("thumb: hung: no progress for ")


async def test_slow_but_progressing_is_never_killed(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "with open(out / 'thumb.txt', 'wb') as f:\n"
        "    for i in range(12):\n"
        "        time.sleep(0.3); f.write(b'x'); f.flush()\n"  # 3.6 s in all, stall is 1.5 s
    )
    fake = FakeType({"thumb": script(tmp_path, "slow", body)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=30)
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)
    assert (site.media / media_id / "thumb.txt").read_bytes() == b"x" * 12


async def test_quiet_phase_with_only_io_counters_moving_is_never_killed(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    """Like ffmpeg's +faststart pass: output size and progress stand still, reads go on."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 65536)
    body = (
        "(out / 'thumb.txt').write_text('done')\n"
        "(progress).write_text('out_time_us=5000000\\nprogress=continue\\n')\n"
        f"end = time.time() + 3.5\n"
        "while time.time() < end:\n"
        f"    with open({str(big)!r}, 'rb') as f: f.read()\n"
        "    time.sleep(0.25)\n"
    )
    fake = FakeType({"thumb": script(tmp_path, "quiet", body)}, durations={"thumb": 10.0})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=30)
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("done", 1)


async def test_progress_is_recorded_from_the_progress_file(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "progress.write_text('out_time_us=1000000\\nprogress=continue\\n"
        "out_time_us=2500000\\nprogress=continue\\n')\n"
        "while not (here / 'gate').exists(): time.sleep(0.05); progress.open('a').write('x\\n')\n"
        + FINISH
    )
    fake = FakeType({"thumb": script(tmp_path, "prog", body)}, durations={"thumb": 10.0})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(lambda: job_rows(site, media_id)[0]["progress"] == 0.25, what="progress")
        (tmp_path / "gate").touch()
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert job_rows(site, media_id)[0]["progress"] == 1


async def test_wall_clock_cap_kills_a_job_that_keeps_busy_too_long(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    capped = dataclasses.replace(fast, job_time_min_seconds=1.0, job_time_factor=0.1)
    body = "with open(out / 'x.txt', 'wb') as f:\n    while True: f.write(b'x'); time.sleep(0.05)\n"
    fake = FakeType({"thumb": script(tmp_path, "busy", body)}, durations={"thumb": 5.0})
    media_id = add_media(site, [THUMB], max_attempts=1)
    async with engine(capped, {"fake": fake}):
        await wait_for(media_state(site, media_id, "failed"), timeout=30)
    assert job_rows(site, media_id)[0]["reason"].startswith("timed out: ran ")
    assert not (site.media / media_id / "x.txt").exists()


def test_only_io_moving_counts_as_alive() -> None:
    a = Liveness(progress_seconds=5.0, output_bytes=100, io_bytes=1000, cpu_ticks=7)
    assert dataclasses.replace(a, io_bytes=1001) != a
    assert dataclasses.replace(a, cpu_ticks=8) != a
    assert dataclasses.replace(a, output_bytes=101) != a
    assert dataclasses.replace(a, progress_seconds=5.1) != a
    assert Liveness(5.0, 100, 1000, 7) == a


def test_progress_fraction_and_time_cap(settings: Settings) -> None:
    assert progress_fraction(2.5, 10.0) == 0.25
    assert progress_fraction(12.0, 10.0) == 1.0
    assert progress_fraction(None, 10.0) is None and progress_fraction(1.0, None) is None
    s = dataclasses.replace(settings, job_time_min_seconds=600, job_time_factor=20)
    assert time_cap(s, None) == 600 and time_cap(s, 60.0) == 1200

"""The real supervisor and watchdog driving fake transcoder scripts."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from pathlib import Path

from gremlin.media.base import PlannedJob
from gremlin.proc import ProcessId, is_zombie
from gremlin.settings import Settings
from gremlin.store import Site

from .fakes import FakeType, add_media, job_rows, media_row, media_state, rows, script, wait_for

THUMB = PlannedJob(step="thumb", outputs={"thumb": "thumb.txt"})

OK_BODY = "(out / 'thumb.txt').write_text('thumb of ' + input.read_text())\n"


def files_of(site: Site, media_id: str) -> dict[str, tuple[str, int, str]]:
    return {
        r["role"]: (r["path"], r["size"], r["sha256"])
        for r in rows(site, "SELECT * FROM files WHERE media_id = ?", media_id)
    }


async def test_success_stores_outputs_and_makes_media_ready(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = FakeType({"thumb": script(tmp_path, "ok", OK_BODY)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert media_row(site, media_id)["state"] == "ready"
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["progress"], job["reason"]) == ("done", 1, 1, None)
    files = files_of(site, media_id)
    path, size, digest = files["thumb"]
    stored = site.content / path
    assert path == f"media/{media_id}/thumb.txt"
    assert stored.read_bytes() == b"thumb of raw bytes"
    assert (size, digest) == (
        len(b"thumb of raw bytes"),
        hashlib.sha256(stored.read_bytes()).hexdigest(),
    )
    # The original moved from queue/ to originals/ once nothing was left to do.
    assert files["original"][0] == f"originals/{media_id}.bin"
    assert (site.originals / f"{media_id}.bin").read_bytes() == b"raw bytes"
    assert not (site.queue / f"{media_id}.bin").exists()
    assert not (site.jobs / str(job["id"])).exists()
    assert fake.done == [("thumb", {})]


async def test_nonzero_exit_then_success_on_retry(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = "if runs('flaky') == 1:\n    print('transient trouble', file=sys.stderr); sys.exit(3)\n"
    fake = FakeType({"thumb": script(tmp_path, "flaky", body + OK_BODY)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["reason"]) == ("done", 2, None)
    assert (tmp_path / "flaky.runs").read_text() == "2"
    assert media_row(site, media_id)["state"] == "ready"


async def test_always_failing_fails_media_after_max_attempts_with_reason_and_tail(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "runs('bad')\n"
        "(out / 'thumb.txt').write_text('partial')\n"
        "for i in range(30): print('noise', i)\n"
        "print('boom: cannot decode frame', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    fake = FakeType({"thumb": script(tmp_path, "bad", body)})
    media_id = add_media(site, [THUMB], max_attempts=3)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"], job["exit_code"]) == ("failed", 3, 1)
    assert job["reason"] == "exited 1: boom: cannot decode frame"
    tail = job["log_tail"].splitlines()
    assert len(tail) == 20 and tail[-1] == "boom: cannot decode frame" and tail[0] == "noise 11"
    media = media_row(site, media_id)
    assert media["reason"] == "thumb: exited 1: boom: cannot decode frame (attempt 3 of 3)"
    assert (tmp_path / "bad.runs").read_text() == "3"
    # Partial outputs and scratch are gone; the original stays queued for a retry.
    assert not (site.media / media_id / "thumb.txt").exists()
    assert not (site.jobs / str(job["id"])).exists()
    assert files_of(site, media_id)["original"][0] == f"queue/{media_id}.bin"


async def test_bad_input_exit_65_is_not_retried(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = "runs('bomb')\nprint('decompression bomb: 900 MP', file=sys.stderr)\nsys.exit(65)\n"
    fake = FakeType({"thumb": script(tmp_path, "bomb", body)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("failed", 1)
    assert (tmp_path / "bomb.runs").read_text() == "1"
    assert media_row(site, media_id)["reason"] == (
        "thumb: bad input: decompression bomb: 900 MP (bad input, not retried)"
    )


async def test_follow_up_jobs_block_until_done_and_python_workers_run(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    medium_body = (
        "while not (here / 'gate').exists(): time.sleep(0.02)\n"
        "(out / 'medium.txt').write_bytes(b'medium')\n"
    )
    fake = FakeType(
        {"medium": script(tmp_path, "medium", medium_body)},
        follow_ups={"probe": [PlannedJob(step="medium", outputs={"medium": "medium.txt"})]},
        python={"probe": "tests.actors.workers:probe"},
    )
    media_id = add_media(site, [PlannedJob(step="probe", outputs={"info": "info.json"})])
    async with engine(fast, {"fake": fake}):
        await wait_for(lambda: len(job_rows(site, media_id)) == 2, what="follow-up inserted")
        probe, medium = job_rows(site, media_id)
        assert probe["state"] == "done"
        assert media_row(site, media_id)["state"] == "processing"  # medium still blocks it
        assert media_row(site, media_id)["width"] == 640  # on_done ran with the result
        gate.touch()
        await wait_for(media_state(site, media_id, "ready", "failed"))
    assert media_row(site, media_id)["state"] == "ready"
    assert set(files_of(site, media_id)) == {"original", "info", "medium"}
    assert (site.media / media_id / "info.json").read_text() == '{"step": "probe"}'
    assert fake.done[0] == (
        "probe",
        {"width": 640, "files": {"info": {"mime": "application/json"}}},
    )
    assert rows(site, "SELECT mime FROM files WHERE role = 'info'")[0]["mime"] == "application/json"


async def test_concurrency_is_capped(site: Site, fast: Settings, engine, tmp_path: Path) -> None:
    body = (
        "with open(here / 'live', 'a') as f: f.write('+')\n"
        "time.sleep(0.3)\n"
        "(out / 'thumb.txt').write_text('x')\n"
        "with open(here / 'live', 'a') as f: f.write('-')  # O_APPEND: one atomic write\n"
    )
    fake = FakeType({"thumb": script(tmp_path, "slowish", body)})
    ids = [add_media(site, [THUMB]) for _ in range(5)]
    async with engine(fast, {"fake": fake}):
        for media_id in ids:
            await wait_for(media_state(site, media_id, "ready", "failed"))
    live = peak = 0
    for ch in (tmp_path / "live").read_text():
        live += 1 if ch == "+" else -1
        peak = max(peak, live)
    assert peak <= 2 and all(media_row(site, m)["state"] == "ready" for m in ids)


async def test_leftover_children_of_a_job_are_killed(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '600'])\n"
        "(here / 'child.pid').write_text(str(child.pid))\n" + OK_BODY
    )
    fake = FakeType({"thumb": script(tmp_path, "leaky", body)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    child = int((tmp_path / "child.pid").read_text())
    await wait_for(lambda: ProcessId.of(child) is None or is_zombie(child), what="child gone")


async def test_a_media_type_whose_on_done_raises_fails_the_job_not_the_engine(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    class Broken(FakeType):
        def on_done(self, conn, job, result, settings):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug in the media type")

    fake = Broken({"thumb": script(tmp_path, "ok", OK_BODY)})
    media_id = add_media(site, [THUMB], max_attempts=2)
    async with engine(fast, {"fake": fake}):
        await wait_for(media_state(site, media_id, "failed"))
    [job] = job_rows(site, media_id)
    assert (job["state"], job["attempt"]) == ("failed", 2)
    assert job["reason"] == "finishing failed: RuntimeError: bug in the media type"
    assert not files_of(site, media_id).get("thumb")
    assert not (site.media / media_id / "thumb.txt").exists()


async def test_jobs_run_at_the_configured_lower_priority(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    body = (
        "group = open('/proc/self/autogroup').read().split()[-1]"
        " if os.path.exists('/proc/self/autogroup') else 'none'\n"
        "(out / 'thumb.txt').write_text(f'{os.nice(0)} {group}')\n"
    )
    fake = FakeType({"thumb": script(tmp_path, "nice", body)})
    media_id = add_media(site, [THUMB])
    async with engine(dataclasses.replace(fast, jobs_nice=7), {"fake": fake}):
        await wait_for(media_state(site, media_id, "ready", "failed"))
    niceness, group = (site.media / media_id / "thumb.txt").read_text().split()
    assert int(niceness) == min(19, os.nice(0) + 7)
    # The job's session is its own autogroup: niced too, or the nice would not count.
    assert group in (niceness, "none")


async def test_without_the_fork_server_the_plain_runner_does_the_same(
    site: Site, fast: Settings, engine, tmp_path: Path
) -> None:
    fake = FakeType({"thumb": script(tmp_path, "ok", OK_BODY)})
    media_id = add_media(site, [THUMB])
    async with engine(fast, {"fake": fake}, fork_server=False):
        await wait_for(media_state(site, media_id, "ready", "failed"), timeout=60)
    assert media_row(site, media_id)["state"] == "ready"
    assert (site.media / media_id / "thumb.txt").read_bytes() == b"thumb of raw bytes"


async def test_a_dead_fork_server_falls_back_to_the_plain_runner(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    from gremlin.actors.jobfiles import JobDir, write_json_atomic
    from gremlin.actors.launch import open_launcher

    async with open_launcher(fork_server=True) as launcher:
        assert launcher.warm
        assert launcher._sock is not None
        launcher._sock.shutdown(socket.SHUT_RDWR)  # the fork server is unreachable
        jobdir = JobDir(site.jobs / "1")
        jobdir.fresh()
        write_json_atomic(jobdir.spec, {"argv": ["true"], "input": "/dev/null", "python": ""})
        await launcher.launch(jobdir.path)
        assert jobdir.read_pid() is not None
        assert not launcher.warm  # and later jobs go straight to the runner

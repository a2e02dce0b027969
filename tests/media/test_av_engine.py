"""Video and audio through the real job engine (supervisor + watchdog + runner), end to end:
upload commit -> probe -> renditions -> ready; and with an ffmpeg shim (the `ffmpeg_path`
setting pointing at a script) that hangs, fails or progresses slowly."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from gremlin.accounts import create_user
from gremlin.actors.jobs import serve_jobs
from gremlin.actors.watchdog import serve_watchdog
from gremlin.media import load_media_types
from gremlin.media.commit import commit_upload
from gremlin.runtime import Runtime
from gremlin.settings import Settings
from gremlin.store import Site, Store, open_store, sha256_file

from .avtools import FFMPEG, ffmpeg, make_clip, streams

pytestmark = pytest.mark.slow


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        stall_seconds=2.0,
        watchdog_poll_seconds=0.1,
        retry_backoff_seconds=0.05,
        retry_backoff_max_seconds=0.2,
        kill_grace_seconds=1.0,
        jobs_concurrency=2,
        jobs_nice=0,
        video_heights="90,144",
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Store]:
    """A store with a user, and the real supervisor and watchdog working on it."""
    types = load_media_types(settings)
    async with open_store(settings.db_path) as store, trio.open_nursery() as nursery:
        await store.write(lambda c: create_user(c, "alice", None))
        runtime = Runtime(settings, store)
        await nursery.start(partial(serve_jobs, runtime, types, poll_seconds=0.2))
        await nursery.start(serve_watchdog, runtime)
        yield store
        nursery.cancel_scope.cancel()


async def upload(store: Store, settings: Settings, source: Path) -> str:
    staged = settings.content / "incoming" / f"up-{source.name}"
    shutil.copyfile(source, staged)
    committed = await commit_upload(
        store, settings, owner_id=1, staged=staged, original_name=source.name
    )
    return committed.media_id


def rows(site: Site, sql: str, *args: object) -> list[dict[str, Any]]:
    conn = sqlite3.connect(site.db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


async def settled(site: Site, media_id: str, timeout: float = 240) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            [media] = rows(site, "SELECT * FROM media WHERE id = ?", media_id)
            if media["state"] != "processing":
                return media
            await trio.sleep(0.1)


def jobs_by_step(site: Site, media_id: str) -> dict[str, dict[str, Any]]:
    return {j["step"]: j for j in rows(site, "SELECT * FROM jobs WHERE media_id = ?", media_id)}


def files_by_role(site: Site, media_id: str) -> dict[str, dict[str, Any]]:
    return {f["role"]: f for f in rows(site, "SELECT * FROM files WHERE media_id = ?", media_id)}


async def test_video_import_to_ready_with_checksums(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    async with running(fast) as store:
        media_id = await upload(store, fast, clip)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    assert (media["kind"], media["width"], media["height"]) == ("video", 320, 180)
    assert media["duration"] == pytest.approx(1.0, abs=0.1)
    files = files_by_role(site, media_id)
    assert set(files) == {"original", "video_90", "video_144", "poster"}
    for row in files.values():
        assert (row["size"], row["sha256"]) == sha256_file(site.content / row["path"])
    assert files["video_144"]["path"] == f"media/{media_id}/video_144.mp4"
    assert (files["video_144"]["mime"], files["video_144"]["width"]) == ("video/mp4", 256)
    assert files["video_144"]["duration"] == pytest.approx(1.0, abs=0.1)
    assert (files["poster"]["mime"], files["poster"]["height"]) == ("image/jpeg", 144)
    [v] = streams(site.content / files["video_90"]["path"], "video")
    assert (v["codec_name"], v["height"]) == ("h264", 90)
    assert all(
        j["attempt"] == 1 and j["state"] == "done" for j in jobs_by_step(site, media_id).values()
    )


async def test_audio_import_to_ready(site: Site, fast: Settings, tmp_path: Path) -> None:
    song = tmp_path / "song.flac"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "flac", str(song))
    async with running(fast) as store:
        media_id = await upload(store, fast, song)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    assert media["kind"] == "audio" and media["duration"] == pytest.approx(1.0, abs=0.1)
    files = files_by_role(site, media_id)
    assert set(files) == {"original", "audio_opus", "audio_mp3", "waveform"}
    assert files["audio_opus"]["mime"] == "audio/webm"
    assert files["audio_mp3"]["mime"] == "audio/mpeg"
    assert (files["waveform"]["mime"], files["waveform"]["width"]) == ("image/png", 1200)


async def test_video_container_with_only_audio_is_routed_to_audio(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "talk.mkv", video=False, acodec=("-c:a", "libvorbis"))
    async with running(fast) as store:
        media_id = await upload(store, fast, clip)
        media = await settled(site, media_id)
    assert files_by_role(site, media_id)["original"]["mime"] == "video/x-matroska"  # sniffed
    assert (media["state"], media["kind"]) == ("ready", "audio"), media["reason"]
    assert set(files_by_role(site, media_id)) == {"original", "audio_opus", "audio_mp3", "waveform"}


async def test_truncated_video_fails_once_with_a_readable_reason(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "full.mp4", size="320x180")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    async with running(fast) as store:
        media_id = await upload(store, fast, cut)
        media = await settled(site, media_id)
    assert media["state"] == "failed"
    assert media["reason"].startswith("probe: ")
    assert "Invalid data found when processing input" in media["reason"]
    assert media["reason"].endswith("(bad input, not retried)")
    assert jobs_by_step(site, media_id)["probe"]["attempt"] == 1


# -- with an ffmpeg shim -----------------------------------------------------------------------

SHIM = """#!{python}
import json, os, pathlib, sys, time
REAL, STATE = {real!r}, pathlib.Path({state!r})
args = sys.argv[1:]
target = pathlib.Path(args[-1]).name if args else ""
plan = json.loads((STATE / "plan.json").read_text()).get(target)
if plan:
    counter = STATE / (target + ".runs")
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    what = plan[min(runs, len(plan) - 1)]
    if what == "hang":
        time.sleep(3600)
    if what == "fail":
        print("Error while encoding: simulated encoder crash", file=sys.stderr)
        sys.exit(1)
    if what == "quiet_io":  # like +faststart's second pass: no progress, but writing
        with open(STATE / "scratch", "wb") as f:
            for _ in range(40):
                f.write(os.urandom(65536))
                f.flush()
                time.sleep(0.1)
    if what == "slow":
        progress = pathlib.Path(args[args.index("-progress") + 1])
        for i in range(1, 8):
            with open(progress, "a") as f:
                f.write(f"out_time_us={{i * 100000}}\\nprogress=continue\\n")
            time.sleep(0.4)
os.execv(REAL, [REAL, *args])
"""


def shim(tmp_path: Path, plan: dict[str, list[str]]) -> Path:
    state = tmp_path / "shim-state"
    state.mkdir()
    (state / "plan.json").write_text(json.dumps(plan))
    path = tmp_path / "bin" / "ffmpeg"
    path.parent.mkdir()
    path.write_text(SHIM.format(python=sys.executable, real=FFMPEG, state=str(state)))
    path.chmod(0o755)
    return path


def runs(tmp_path: Path, target: str) -> int:
    counter = tmp_path / "shim-state" / f"{target}.runs"
    return int(counter.read_text()) if counter.exists() else 0


async def test_hung_ffmpeg_is_killed_and_retried(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        fast, ffmpeg_path=str(shim(tmp_path, {"video_144.mp4": ["hang", "ok"]}))
    )
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    async with running(settings) as store:
        media_id = await upload(store, settings, clip)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    jobs = jobs_by_step(site, media_id)
    assert jobs["video_144"]["attempt"] == 2 and runs(tmp_path, "video_144.mp4") == 2
    assert jobs["video_90"]["attempt"] == 1 and jobs["poster"]["attempt"] == 1


async def test_quiet_but_writing_is_not_mistaken_for_a_hang(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    plan = {"video_90.mp4": ["quiet_io"]}
    settings = dataclasses.replace(fast, video_heights="90", ffmpeg_path=str(shim(tmp_path, plan)))
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    async with running(settings) as store:
        media_id = await upload(store, settings, clip)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    assert jobs_by_step(site, media_id)["video_90"]["attempt"] == 1  # quiet 4 s > stall 2 s
    assert runs(tmp_path, "video_90.mp4") == 1


async def test_one_failing_rendition_is_retried_alone(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    plan = {"video_90.mp4": ["fail", "ok"]}
    settings = dataclasses.replace(fast, ffmpeg_path=str(shim(tmp_path, plan)))
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    async with running(settings) as store:
        media_id = await upload(store, settings, clip)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    attempts = {step: j["attempt"] for step, j in jobs_by_step(site, media_id).items()}
    assert attempts == {"probe": 1, "video_90": 2, "video_144": 1, "poster": 1}
    assert runs(tmp_path, "video_90.mp4") == 2


async def test_rendition_failing_every_time_fails_the_media_with_the_encoder_message(
    site: Site, fast: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        fast, max_attempts=2, ffmpeg_path=str(shim(tmp_path, {"video_144.mp4": ["fail"]}))
    )
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    async with running(settings) as store:
        media_id = await upload(store, settings, clip)
        media = await settled(site, media_id)
    assert media["state"] == "failed"
    assert media["reason"] == (
        "video_144: exited 1: Error while encoding: simulated encoder crash (attempt 2 of 2)"
    )


async def test_progress_reaches_the_jobs_table(site: Site, fast: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(
        fast, video_heights="90", ffmpeg_path=str(shim(tmp_path, {"video_90.mp4": ["slow"]}))
    )
    clip = make_clip(tmp_path / "clip.mkv", size="320x180", vcodec=("-c:v", "mpeg4"))
    seen: set[float] = set()
    async with running(settings) as store:
        media_id = await upload(store, settings, clip)
        with trio.fail_after(120):
            while (
                not (job := jobs_by_step(site, media_id).get("video_90")) or job["state"] != "done"
            ):
                if job and job["state"] == "running":
                    seen.add(round(job["progress"], 2))
                await trio.sleep(0.05)
        media = await settled(site, media_id)
    assert media["state"] == "ready", media["reason"]
    partial_values = {p for p in seen if 0 < p < 1}
    assert len(partial_values) >= 2, seen  # it moved, in steps, while running
    assert jobs_by_step(site, media_id)["video_90"]["progress"] == 1

"""Across a handover: a transcode started by the old server is adopted by the new one (same
process, same attempt) and finishes; a tus upload in flight completes and commits once."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from gremlin.proc import start_time
from gremlin.store import Site
from tests.conftest import ServerProcess, run_gremlin
from tests.media.avtools import make_clip
from tests.upgrade import next_version
from tests.upgrade.procs import UpgradeProcess, token_for, wait_health

pytestmark = pytest.mark.slow


def _rows(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _wait(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def video_site(tmp_path: Path) -> Site:
    site = Site(tmp_path / "site")
    assert run_gremlin("init", str(site.root)).returncode == 0
    (site.root / "gremlin.toml").write_text('video_heights = "360"\njobs_concurrency = 1\n')
    return site


def test_a_running_transcode_is_adopted_and_finishes(
    video_site: Site, tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = video_site
    token = token_for(site.root)
    # 720p in, 360p out: a real transcode (a 360p H.264 input would only be remuxed).
    clip = make_clip(tmp_path / "clip.mp4", size="1280x720", seconds=60)
    old = server_factory(site.root)
    auth = {"Authorization": f"Bearer {token}"}
    with clip.open("rb") as f:
        created = httpx.post(
            f"{old.url}/api/v1/media", headers=auth, files={"file": ("clip.mp4", f)}, timeout=60
        )
    assert created.status_code == 201, created.text
    media_id = created.json()["id"]

    def running_transcode() -> sqlite3.Row | None:
        rows = _rows(
            site.db,
            "SELECT * FROM jobs WHERE media_id = ? AND state = 'running' AND step != 'probe'"
            " AND step LIKE 'video%' AND pid IS NOT NULL",
            media_id,
        )
        return rows[0] if rows else None

    job = _wait(running_transcode, 180, "a running transcode")
    assert start_time(job["pid"]) == job["pid_start"]

    new = UpgradeProcess(site.root, env=next_version.ENV)
    new.wait_serving()
    wait_health(old.url, lambda h: h["pid"] == new.proc.pid)
    assert old.proc.wait(30) == 0
    # The handover did not touch it: the same process still runs (or has just finished).
    assert start_time(job["pid"]) in (job["pid_start"], None)

    def done() -> sqlite3.Row | None:
        row = _rows(site.db, "SELECT * FROM jobs WHERE id = ?", job["id"])[0]
        return row if row["state"] in ("done", "failed") else None

    finished = _wait(done, 300, "the adopted job to finish")
    assert finished["state"] == "done", finished["reason"]
    assert finished["attempt"] == job["attempt"]  # adopted, not run again
    ready = _wait(
        lambda: (
            httpx.get(f"{new.url}/api/v1/media/{media_id}", headers=auth).json()["state"]
            in ("ready", "failed")
            or None
        ),
        300,
        "the media to be ready",
    )
    assert ready
    assert httpx.get(f"{new.url}/api/v1/media/{media_id}", headers=auth).json()["state"] == "ready"
    assert f"job={job['id']} adopted pid={job['pid']}" in new.log()
    new.stop()


def _noise_jpeg(path: Path) -> Path:
    from PIL import Image

    Image.frombytes("RGB", (1200, 1000), os.urandom(1200 * 1000 * 3)).save(path, quality=95)
    return path


def test_a_tus_upload_in_flight_across_the_handover_commits_once(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    from tusclient.client import TusClient

    site = Site(tmp_path / "site")
    assert run_gremlin("init", str(site.root)).returncode == 0
    token = token_for(site.root)
    photo = _noise_jpeg(tmp_path / "noise.jpg")
    size = photo.stat().st_size
    old = server_factory(site.root)
    client = TusClient(f"{old.url}/api/v1/uploads", headers={"Authorization": f"Bearer {token}"})
    new = None
    served_by = []  # which server answered /healthz after each chunk
    with photo.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream,
            chunk_size=size // 24 + 1,
            metadata={"filename": "noise.jpg", "title": "across the handover"},
            retries=30,
            retry_delay=1,
        )
        uploader.set_url(uploader.create_url())
        while uploader.offset < size:
            uploader.upload_chunk()
            served_by.append(httpx.get(f"{old.url}/healthz", timeout=30).json()["pid"])
            if len(served_by) == 4:
                new = UpgradeProcess(site.root, env=next_version.ENV)
            time.sleep(0.3)
    assert new is not None
    media_id = uploader.request.response_headers.get("gremlin-media-id")
    assert media_id
    assert served_by[0] == old.proc.pid and served_by[-1] == new.proc.pid  # it spanned both
    new.wait_serving()
    health = wait_health(old.url, lambda h: h["pid"] == new.proc.pid)
    assert health["version"] == next_version.VERSION
    media = _rows(site.db, "SELECT id FROM media")
    assert [m["id"] for m in media] == [media_id]  # committed once
    files = _rows(site.db, "SELECT size FROM files WHERE media_id = ? AND role = 'original'",
                  media_id)  # fmt: skip
    assert [f["size"] for f in files] == [size]
    handovers = _rows(site.db, "SELECT stage FROM handover")
    assert [h["stage"] for h in handovers] == ["done"]
    new.stop()

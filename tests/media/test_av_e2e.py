"""Video and audio end to end: `gremlin import` of real clips, the real server processes them,
the JSON API shows roles, MIME types, sizes and durations, and files are served with Range."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gremlin.store import Site, sha256_file

from ..conftest import ServerProcess, run_gremlin
from .avtools import ffmpeg, make_clip, rotate
from .test_images_e2e import alice, query, settled, wait_for  # noqa: F401

pytestmark = pytest.mark.slow


def no_job_left(site: Site, ids: list[str]) -> bool | None:
    marks = ",".join("?" * len(ids))
    [row] = query(
        site,
        f"SELECT count(*) AS n FROM jobs WHERE media_id IN ({marks})"
        " AND state IN ('queued', 'running')",
        *ids,
    )
    return row["n"] == 0 or None


def test_import_video_and_audio_then_serve_until_ready(
    site: Site,
    alice: str,  # noqa: F811
    tmp_path: Path,
    server_factory: type[ServerProcess],
) -> None:
    (site.root / "gremlin.toml").write_text('video_heights = "90,144"\n')
    batch = tmp_path / "batch"
    batch.mkdir()
    plain = make_clip(tmp_path / "plain.mp4", size="320x180")
    rotate(plain, batch / "phone.mp4", 90)
    song = batch / "song.mp3"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=1",
        "-f", "lavfi", "-i", "testsrc=size=64x64:duration=1",
        "-map", "0", "-map", "1", "-frames:v", "1", "-c:v", "png",
        "-disposition:v", "attached_pic", "-c:a", "libmp3lame", str(song),
    )  # fmt: skip
    (batch / "notes.mp4").write_text("not a video at all\n" * 20)
    cut = make_clip(tmp_path / "full.mp4", size="320x180")
    (batch / "cut.mp4").write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])

    done = run_gremlin("import", str(site.root), "--user", "alice", str(batch))
    assert done.returncode == 1 and "notes.mp4" in done.stderr  # refused, the rest imported
    ids = {
        Path(line.split(" ", 1)[1]).name: line.split()[0]
        for line in done.stdout.split("\n")
        if line
    }
    assert set(ids) == {"phone.mp4", "song.mp3", "cut.mp4"}

    server = server_factory(site.root)
    # Ready means no *blocking* job is left: the audio's cover-art poster is a non-blocking job
    # that may still run then (its slot is freed as soon as the previous job's process exits),
    # so wait for every job of the batch as well before looking at its files.
    wait_for(
        lambda: settled(site, list(ids.values())) and no_job_left(site, list(ids.values())),
        "the batch to settle",
    )
    token = run_gremlin("token", str(site.root), "alice").stdout.strip()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        phone = client.get(f"/api/v1/media/{ids['phone.mp4']}").json()
        assert (phone["kind"], phone["state"]) == ("video", "ready"), phone["reason"]
        files = {f["role"]: f for f in phone["files"]}
        assert {"video_90", "video_144", "poster"} <= set(files)
        assert (files["video_144"]["mime"], files["video_144"]["width"]) == ("video/mp4", 144)
        assert files["video_144"]["height"] == 256  # upright
        assert files["video_144"]["duration"] == pytest.approx(1.0, abs=0.1)
        assert files["poster"]["mime"] == "image/jpeg"
        video = client.get(files["video_144"]["url"], headers={"Range": "bytes=0-99"})
        assert video.status_code == 206 and len(video.content) == 100

        song_media = client.get(f"/api/v1/media/{ids['song.mp3']}").json()
        assert (song_media["kind"], song_media["state"]) == ("audio", "ready"), song_media["reason"]
        files = {f["role"]: f for f in song_media["files"]}
        assert {"audio_opus", "audio_mp3", "waveform", "poster"} <= set(files)
        assert (files["audio_opus"]["mime"], files["audio_mp3"]["mime"]) == (
            "audio/webm",
            "audio/mpeg",
        )
        whole = client.get(files["audio_opus"]["url"])
        assert whole.status_code == 200 and len(whole.content) == files["audio_opus"]["size"]

        failed = client.get(f"/api/v1/media/{ids['cut.mp4']}").json()
        assert failed["state"] == "failed"
        assert "Invalid data found when processing input" in failed["reason"]
        [job] = failed["jobs"]
        assert (job["step"], job["attempt"]) == ("probe", 1)

    for row in query(site, "SELECT * FROM files WHERE media_id = ?", ids["phone.mp4"]):
        assert (row["size"], row["sha256"]) == sha256_file(site.content / row["path"])
    listed = json.loads(run_gremlin("jobs", str(site.root), "--json").stdout)
    assert {j["step"] for j in listed} >= {"probe", "video_90", "video_144", "poster"}
    assert server.stop() == 0

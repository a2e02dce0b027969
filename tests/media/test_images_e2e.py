"""Images end to end: `gremlin import`, then the real server processes them until ready."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from PIL import Image

from gremlin.store import Site, sha256_file

from ..conftest import ServerProcess, run_gremlin
from .images import bomb_png, camera_jpeg, corrupt_jpeg, image_bytes, write

pytestmark = pytest.mark.slow
T = TypeVar("T")


def query(site: Site, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(site.db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settled(site: Site, ids: list[str]) -> bool | None:
    marks = ",".join("?" * len(ids))
    rows = query(site, f"SELECT state FROM media WHERE id IN ({marks})", *ids)
    return len(rows) == len(ids) and all(r["state"] != "processing" for r in rows) or None


def import_files(site: Site, *paths: Path) -> dict[str, str]:
    done = run_gremlin("import", str(site.root), "--user", "alice", "--json", *map(str, paths))
    assert "Traceback" not in done.stderr, done.stderr
    return {Path(e["path"]).name: e["id"] for e in json.loads(done.stdout)}


@pytest.fixture
def alice(site: Site) -> str:
    done = run_gremlin("adduser", str(site.root), "alice", "--password-stdin", input="password1\n")
    assert done.returncode == 0, done.stderr
    return "alice"


def test_import_then_serve_until_ready(
    site: Site, alice: str, tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    batch = tmp_path / "batch"
    write(batch / "camera.jpg", camera_jpeg((1600, 1200), orientation=6))
    write(batch / "plain.png", image_bytes("PNG", (800, 600)))
    write(batch / "phone.heic", image_bytes("HEIF", (640, 480)))
    write(batch / "cut.jpg", corrupt_jpeg())
    write(batch / "bomb.png", bomb_png())
    write(batch / "empty.jpg", b"")
    write(batch / "text.jpg", b"hello\n" * 50)
    ids = import_files(site, batch)  # no server is running yet
    assert set(ids) == {"camera.jpg", "plain.png", "phone.heic", "cut.jpg", "bomb.png"}

    server = server_factory(site.root)
    wait_for(lambda: settled(site, list(ids.values())), "the batch to settle")

    media = {r["id"]: r for r in query(site, "SELECT * FROM media")}
    for name in ("camera.jpg", "plain.png", "phone.heic"):
        assert media[ids[name]]["state"] == "ready", (name, media[ids[name]]["reason"])
    for name, why in (("cut.jpg", "cannot decode image"), ("bomb.png", "decompression bomb")):
        row = media[ids[name]]
        assert row["state"] == "failed" and why in (row["reason"] or ""), dict(row)
        [job] = query(site, "SELECT * FROM jobs WHERE media_id = ?", ids[name])
        assert job["state"] == "failed" and job["attempt"] == 1  # exit 65: never retried

    camera = ids["camera.jpg"]
    roles = {r["role"]: r for r in query(site, "SELECT * FROM files WHERE media_id = ?", camera)}
    assert set(roles) == {"original", "thumb", "medium"}
    for row in roles.values():
        path = site.content / row["path"]
        assert (row["size"], row["sha256"]) == sha256_file(path)
    assert roles["original"]["path"] == f"originals/{camera}/original.jpg"
    assert not [p for p in site.queue.rglob("*") if p.is_file() and camera in str(p)]
    with Image.open(site.content / roles["medium"]["path"]) as im:
        assert im.size == (960, 1280) and not im.getexif()  # upright portrait, no EXIF
    with Image.open(site.content / roles["thumb"]["path"]) as im:
        assert im.size == (270, 360)
    assert (roles["medium"]["width"], roles["medium"]["height"]) == (960, 1280)
    assert (media[camera]["width"], media[camera]["height"]) == (1600, 1200)
    exif = json.loads(media[camera]["exif"])
    assert exif["model"] == "GC-1" and "gps" not in json.dumps(exif).lower()

    # Still serving; and an import while it runs is picked up by the supervisor.
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    late = import_files(site, write(tmp_path / "late.webp", image_bytes("WEBP")))
    wait_for(lambda: settled(site, list(late.values())), "the late import to settle")
    [row] = query(site, "SELECT state FROM media WHERE id = ?", late["late.webp"])
    assert row["state"] == "ready"
    assert server.stop() == 0

"""A large tus PATCH (the raw upload path, gremlin/web/rawhttp.py) whose body is still arriving
when `gremlin upgrade` hands over. In maintenance the old server lets in-flight writes finish
for `maintenance_write_grace_seconds`: a PATCH that ends within it commits on the old server
(and the new database has it); one that outlasts it is refused (503, its bytes kept but the
last), and the client resumes from HEAD's offset against the new server. Either way the upload
commits once, with the right bytes."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx
import pytest

from gremlin.store import Site
from gremlin.web.rawhttp import RAW_MIN_BYTES
from tests.conftest import ServerProcess, run_gremlin
from tests.upgrade import next_version
from tests.upgrade.procs import UpgradeProcess, token_for, wait_health, wait_stage

pytestmark = pytest.mark.slow

PIECE = 256 * 1024


def _noise_png(path: Path) -> bytes:
    from PIL import Image

    Image.frombytes("RGB", (2000, 2000), os.urandom(2000 * 2000 * 3)).save(path)
    return path.read_bytes()


def _patch(url: str, token: str, data: bytes, offset: int, pace: float) -> int | None:
    """PATCH data[offset:] in one request, PIECE bytes every `pace` seconds; the status, or
    None if the connection was cut before the answer."""
    parts = urlsplit(url)
    conn = h11.Connection(h11.CLIENT)
    body = memoryview(data)[offset:]
    headers = [
        ("Host", parts.netloc),
        ("Authorization", f"Bearer {token}"),
        ("Tus-Resumable", "1.0.0"),
        ("Upload-Offset", str(offset)),
        ("Content-Type", "application/offset+octet-stream"),
        ("Content-Length", str(len(body))),
    ]
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
            sock.sendall(conn.send(h11.Request(method="PATCH", target=parts.path, headers=headers)))
            for at in range(0, len(body), PIECE):
                sock.sendall(conn.send(h11.Data(data=body[at : at + PIECE])))
                time.sleep(pace)
            conn.send(h11.EndOfMessage())
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    return event.status_code
                elif isinstance(event, h11.ConnectionClosed):
                    return None
    except (OSError, h11.RemoteProtocolError):
        return None


def _offset(url: str, token: str) -> tuple[int, str | None]:
    head = httpx.head(
        url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}, timeout=30
    )
    assert head.status_code == 200, head.status_code
    return int(head.headers["upload-offset"]), head.headers.get("gremlin-media-id")


@pytest.mark.parametrize(
    ("grace", "committed_by"),
    [("10", "old"), ("1", "new")],
    ids=["finishes-within-the-grace", "outlasts-the-grace"],
)
def test_a_raw_patch_in_flight_at_the_handover_commits_once(
    tmp_path: Path, server_factory: type[ServerProcess], grace: str, committed_by: str
) -> None:
    site = Site(tmp_path / "site")
    assert run_gremlin("init", str(site.root)).returncode == 0
    token = token_for(site.root)
    data = _noise_png(tmp_path / "noise.png")
    assert len(data) > 16 * RAW_MIN_BYTES  # every PATCH here takes the raw path
    old = server_factory(site.root, env={"GREMLIN_MAINTENANCE_WRITE_GRACE_SECONDS": grace})
    created = httpx.post(
        f"{old.url}/api/v1/uploads",
        headers={
            "Authorization": f"Bearer {token}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": "filename bm9pc2UucG5n",  # noise.png
        },
    )
    assert created.status_code == 201, created.text
    upload = created.headers["Location"]

    # One PATCH of the whole file, paced to last ~8 s; the upgrade starts 1 s into it, and
    # the old server enters maintenance while the body is still arriving.
    first: list[int | None] = []
    sender = threading.Thread(target=lambda: first.append(_patch(upload, token, data, 0, 0.18)))
    sender.start()
    time.sleep(1)
    new = UpgradeProcess(site.root, env=next_version.ENV)
    wait_stage(site.db, "maintenance")
    assert sender.is_alive(), "the PATCH ended before maintenance: nothing was in flight"
    sender.join(120)
    assert first, "the first PATCH never ended"
    new.wait_serving()
    wait_health(old.url, lambda h: h["pid"] == new.proc.pid)

    # Resume, as a tus client does, against whoever serves now (the same address).
    statuses, media_id = [first[0]], None
    for _ in range(20):
        offset, media_id = _offset(upload, token)
        if media_id:
            break
        statuses.append(_patch(upload, token, data, offset, 0))
    assert media_id, statuses
    assert statuses[0] == (204 if committed_by == "old" else 503), statuses
    assert ("upload committed" in old.log()) == (committed_by == "old"), old.log()

    conn = sqlite3.connect(f"file:{site.db}?mode=ro", uri=True, timeout=10)
    try:
        media = conn.execute("SELECT id FROM media").fetchall()
        originals = conn.execute(
            "SELECT size, sha256 FROM files WHERE role = 'original'"
        ).fetchall()
        stages = conn.execute("SELECT stage FROM handover").fetchall()
    finally:
        conn.close()
    assert media == [(media_id,)]  # committed once
    assert originals == [(len(data), hashlib.sha256(data).hexdigest())]
    assert stages == [("done",)]
    assert httpx.get(f"{old.url}/healthz").json()["version"] == next_version.VERSION
    new.stop()

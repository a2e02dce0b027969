"""Uploads and files over a real socket: tuspy, a SIGKILL in the middle of a PATCH, limits."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from gremlin.accounts import create_token, create_user, hash_password
from gremlin.store import Site, connect, transaction

from .helpers import jpeg_bytes, multipart

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


def add_user(site: Site, name: str, *, admin: bool = False) -> str:
    conn = connect(site.db)
    try:
        with transaction(conn):
            user_id = create_user(conn, name, hash_password("pw-long-enough"), is_admin=admin)
            return create_token(conn, user_id, "e2e")
    finally:
        conn.close()


def rows(site: Site, sql: str) -> list[sqlite3.Row]:
    conn = connect(site.db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def padded_jpeg(size: int) -> bytes:
    """A JPEG head (what sniffing reads) followed by filler: a big upload that still commits."""
    head = jpeg_bytes((200, 100))
    return head + bytes(i % 251 for i in range(size - len(head)))


def test_tuspy_upload_then_ranged_download(site: Site, server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = add_user(site, "alice")
    server = server_factory(site.root)
    assert server.proc.stdout is not None
    first_run = server.proc.stdout.readline()
    assert "/setup/" in first_run and "create the admin account" in first_run

    data = padded_jpeg(3 * MiB + 12345)
    source = tmp_path / "photo.jpg"
    source.write_bytes(data)
    client = TusClient(f"{server.url}/api/v1/uploads", headers={"Authorization": f"Bearer {token}"})
    with source.open("rb") as stream:  # tuspy leaves files it opens itself unclosed
        uploader = client.uploader(
            file_stream=stream, chunk_size=MiB, metadata={"filename": "photo.jpg", "title": "Tus"}
        )
        uploader.upload()
    assert uploader.offset == len(data)

    media = rows(
        site,
        "SELECT m.id, m.title, f.sha256, f.size FROM media m JOIN files f ON f.media_id = m.id",
    )
    assert [(m["title"], m["sha256"], m["size"]) for m in media] == [
        ("Tus", hashlib.sha256(data).hexdigest(), len(data))
    ]
    media_id = media[0]["id"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        head = http.head(uploader.url, headers={"Tus-Resumable": "1.0.0"})
        assert head.headers["Gremlin-Media-Id"] == media_id
        whole = http.get(f"/files/{media_id}/original")
        assert whole.status_code == 200 and whole.content == data
        assert http.head(f"/files/{media_id}/original").headers["Content-Length"] == str(len(data))
        suffix = http.get(f"/files/{media_id}/original", headers={"Range": "bytes=-1000"})
        assert suffix.status_code == 206 and suffix.content == data[-1000:]
        etag = whole.headers["ETag"]
        assert (
            http.get(f"/files/{media_id}/original", headers={"If-None-Match": etag}).status_code
            == 304
        )
    assert server.stop() == 0


def _stalling_body(data: bytes, sent: threading.Event, release: threading.Event) -> Iterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]
    sent.set()
    release.wait(60)  # hold the request open until the server is killed
    yield b""


def test_sigkill_mid_patch_resumes_after_restart_and_commits_once(
    site: Site,
    server_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    token = add_user(site, "alice", admin=True)
    auth = {"Authorization": f"Bearer {token}"}
    data = padded_jpeg(6 * MiB)
    source = tmp_path / "big.jpg"
    source.write_bytes(data)

    server = server_factory(site.root)
    stream = source.open("rb")
    uploader = TusClient(f"{server.url}/api/v1/uploads", headers=auth).uploader(
        file_stream=stream, chunk_size=MiB, metadata={"filename": "big.jpg"}
    )
    uploader.upload_chunk()
    uploader.upload_chunk()
    assert uploader.offset == 2 * MiB
    upload_path = uploader.url[uploader.url.index("/api/v1/uploads/") :]
    bin_path = site.incoming / f"{upload_path.rsplit('/', 1)[1]}.bin"

    # A PATCH that sends 2 MiB more and then stalls; the server is killed meanwhile.
    sent, release = threading.Event(), threading.Event()
    headers = {
        **auth,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": str(2 * MiB),
        "Content-Type": "application/offset+octet-stream",
    }
    outcome: list[object] = []

    def stalled_patch() -> None:
        try:
            outcome.append(
                httpx.patch(
                    server.url + upload_path,
                    content=_stalling_body(data[2 * MiB : 4 * MiB], sent, release),
                    headers=headers,
                    timeout=60,
                )
            )
        except httpx.HTTPError as e:
            outcome.append(e)

    thread = threading.Thread(target=stalled_patch, daemon=True)
    thread.start()
    assert sent.wait(30)
    deadline = time.monotonic() + 30
    while bin_path.stat().st_size <= 2 * MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bin_path.stat().st_size > 2 * MiB
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    release.set()
    thread.join(70)
    answered = outcome[0] if outcome else None  # the killed server answered nothing useful
    assert not isinstance(answered, httpx.Response) or answered.status_code >= 400
    on_disk = bin_path.stat().st_size

    restarted = server_factory(site.root)
    resumed = TusClient(f"{restarted.url}/api/v1/uploads", headers=auth).uploader(
        file_stream=stream, url=restarted.url + upload_path, chunk_size=MiB
    )
    assert resumed.offset == on_disk  # from HEAD: exactly the bytes that reached the disk
    resumed.upload()
    stream.close()
    media = rows(site, "SELECT f.sha256, f.size FROM files f WHERE f.role = 'original'")
    assert [(m["sha256"], m["size"]) for m in media] == [
        (hashlib.sha256(data).hexdigest(), len(data))
    ]
    # Asking again (a client that missed the final 204) finds the same, single media.
    with httpx.Client(headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=30) as http:
        media_id = http.head(restarted.url + upload_path).headers["Gremlin-Media-Id"]
        again = http.patch(
            restarted.url + upload_path,
            content=b"",
            headers={
                "Upload-Offset": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert again.status_code == 204 and again.headers["Gremlin-Media-Id"] == media_id
    assert len(rows(site, "SELECT id FROM media")) == 1
    assert restarted.stop() == 0


def test_streamed_limits_over_a_real_socket(site: Site, server_factory) -> None:  # type: ignore[no-untyped-def]
    token = add_user(site, "alice")
    server = server_factory(site.root, env={"GREMLIN_MAX_UPLOAD_BYTES": str(MiB)})
    auth = {"Authorization": f"Bearer {token}"}
    body, ctype = multipart({"title": "big"}, padded_jpeg(3 * MiB))

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the stream
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        try:
            response = http.post(
                "/api/v1/media", content=chunked(), headers={"Content-Type": ctype}
            )
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "too_large"
        except httpx.HTTPError:
            pass  # the server may close the connection before the client finished sending
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        empty, ctype = multipart({}, b"")
        assert (
            http.post("/api/v1/media", content=empty, headers={"Content-Type": ctype}).status_code
            == 422
        )
        ok, ctype = multipart({"title": "small"}, jpeg_bytes())
        created = http.post("/api/v1/media", content=ok, headers={"Content-Type": ctype})
        assert created.status_code == 201
    assert os.listdir(site.incoming) == []
    assert server.stop() == 0

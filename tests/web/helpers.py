"""Small builders for web tests: a JPEG, a multipart body, a ready media with a derived file."""

from __future__ import annotations

import hashlib
import io
import secrets
import time
from pathlib import Path

from PIL import Image

from gremlin.store import Store


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def multipart(
    fields: dict[str, str], file: bytes | None, filename: str = "photo.jpg"
) -> tuple[bytes, str]:
    """(body, content type) with the fields first, in order, then the `file` part."""
    boundary = "gremlin" + secrets.token_hex(8)
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + file
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def make_media(
    store: Store,
    content: Path,
    owner_id: int,
    *,
    visibility: str = "public",
    state: str = "ready",
    thumb: bytes = b"derived thumbnail bytes " * 100,
    created_at: float | None = None,
) -> str:
    """A media row with an original and a `thumb` file on disk, without running any job."""
    media_id = secrets.token_hex(12)
    now = time.time() if created_at is None else created_at
    files = {"original": jpeg_bytes(), "thumb": thumb}
    rows = []
    for role, data in files.items():
        rel = f"media/{media_id}/{role}.bin" if role != "original" else f"originals/{media_id}.jpg"
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_bytes(data)
        rows.append((role, rel, len(data), hashlib.sha256(data).hexdigest()))

    def insert(conn):  # type: ignore[no-untyped-def]
        conn.execute(
            "INSERT INTO media (id, owner_id, kind, state, title, visibility, created_at,"
            " updated_at) VALUES (?, ?, 'image', ?, ?, ?, ?, ?)",
            (media_id, owner_id, state, f"title {media_id}", visibility, now, now),
        )
        for role, rel, size, sha in rows:
            conn.execute(
                "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (media_id, role, rel, "image/jpeg", size, sha, now),
            )

    await store.write(insert)
    return media_id

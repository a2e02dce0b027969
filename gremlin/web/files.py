"""Stored files at /files/<media-id>/<role>: Range (suffix ranges too), ETag and 304, long
cache lifetimes, a 1 MiB read buffer, no response timeout, and the media's visibility checked
on every request (private: owner and admins; unlisted: anyone with the link). With
settings.x_accel_redirect, nginx sends the bytes (`X-Accel-Redirect: <prefix><content path>`).

Our own small ranged response rather than Quart's send_file: that one answers `bytes=-N`
with a 500 and reads 8 KiB at a time (DESIGN.md, measured facts).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import trio
from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue

from ..errors import NotFound
from ..store import Site
from . import api_queries
from .api import viewer
from .auth import get_runtime
from .queries import Viewer, may_fetch_original
from .ranges import RangeNotSatisfiable, etag_for, etag_matches, if_range_allows, parse_range

log = logging.getLogger(__name__)

bp = Blueprint("files", __name__)
READ_BYTES = 1024 * 1024
YEAR_SECONDS = 365 * 24 * 3600
DAY_SECONDS = 24 * 3600
MOVE_RETRIES = 5


def _file_for(
    conn: sqlite3.Connection, media_id: str, role: str, who: Viewer, public_originals: bool
) -> dict[str, Any] | None:
    media = api_queries.viewable(conn, media_id, who)
    if media is None:
        return None
    if role == "original" and not may_fetch_original(media, who, public_originals):
        return None
    row = conn.execute(
        "SELECT path, mime, size, sha256 FROM files WHERE media_id = ? AND role = ?",
        (media_id, role),
    ).fetchone()
    if row is None:
        return None
    return {**dict(row), "visibility": media["visibility"], "state": media["state"]}


def _open_stored(site: Site, relative: str) -> int | None:
    """Open a stored file; an original being settled from queue/ into originals/ (DESIGN.md's
    layout) is already renamed before its row changes at COMMIT, so look there too."""
    candidates = [relative]
    if relative.startswith("queue/"):
        candidates.append("originals/" + relative.removeprefix("queue/"))
    for candidate in candidates:
        try:
            return os.open(site.path(candidate), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    return None


def cache_control(role: str, visibility: str) -> str:
    scope = "public" if visibility == "public" else "private"
    if role == "original":
        return f"{scope}, max-age={DAY_SECONDS}"
    return f"{scope}, max-age={YEAR_SECONDS}, immutable"


async def _chunks(fd: int, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        offset, remaining = start, length
        while remaining > 0:
            data = await trio.to_thread.run_sync(os.pread, fd, min(READ_BYTES, remaining), offset)
            if not data:
                break  # the file shrank under us; the client sees a short body
            offset += len(data)
            remaining -= len(data)
            yield data
    finally:
        os.close(fd)


@bp.route("/files/<media_id>/<role>", methods=["GET", "HEAD"])
async def serve_file(media_id: str, role: str) -> ResponseReturnValue:
    runtime = get_runtime()
    who = await viewer()
    found: dict[str, Any] | None = None
    fd: int | None = None
    for attempt in range(MOVE_RETRIES):
        found = await runtime.store.read(
            _file_for, media_id, role, who, runtime.settings.public_originals
        )
        if found is None:
            raise NotFound(f"no file {role!r} of media {media_id} that you may see")
        fd = await trio.to_thread.run_sync(_open_stored, runtime.site, found["path"])
        if fd is not None:
            break
        await trio.sleep(0.05 * (attempt + 1))  # the row follows the file's move at COMMIT
    if fd is None or found is None:
        log.warning("file missing on disk: media=%s role=%s", media_id, role)
        raise NotFound(f"the file {role!r} of media {media_id} is missing; an admin was told")
    try:
        return await _respond(fd, found, role, runtime.settings.x_accel_redirect)
    except BaseException:
        os.close(fd)
        raise


async def _respond(fd: int, found: dict[str, Any], role: str, accel: str) -> Response:
    size = os.fstat(fd).st_size
    etag = etag_for(found["sha256"])
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control(role, found["visibility"]),
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Cookie, Authorization",
    }
    if etag_matches(request.headers.get("If-None-Match"), etag):
        os.close(fd)
        return Response(b"", status=304, headers=headers)
    if accel:  # nginx does ranges and conditionals from here on
        os.close(fd)
        headers["X-Accel-Redirect"] = accel.rstrip("/") + "/" + quote(found["path"])
        return Response(b"", status=200, headers=headers, content_type=found["mime"])
    try:
        byte_range = (
            parse_range(request.headers.get("Range"), size)
            if if_range_allows(request.headers.get("If-Range"), etag)
            else None
        )
    except RangeNotSatisfiable:
        os.close(fd)
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", status=416, headers=headers)
    status, start, length = 200, 0, size
    if byte_range is not None:
        status, start, length = 206, byte_range.start, byte_range.length
        headers["Content-Range"] = byte_range.content_range(size)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        os.close(fd)
        response = Response(b"", status=status, headers=headers, content_type=found["mime"])
        response.headers["Content-Length"] = str(length)  # what a GET would send
    else:
        body = _chunks(fd, start, length)
        response = Response(body, status=status, headers=headers, content_type=found["mime"])
    response.timeout = None  # long downloads are never cut
    return response

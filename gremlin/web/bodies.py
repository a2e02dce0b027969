"""Request bodies streamed to disk with bounded memory, never buffered by Quart.

Quart's connection task appends every ASGI `http.request` message to an unbounded bytearray
(measured: 682 MiB RSS for a 500 MiB upload). For views marked with `auth.streams_body`,
`StreamingHTTPConnection` keeps the real `receive` in the scope (`RECEIVE_KEY`) and gives Quart
an empty body instead; the view reads the real stream through `body_reader()`.

`write_stream` writes 1 MiB batches (a list of chunks, one writev) in a worker thread, SHA-256
updated there too, while the event loop receives the next batch: at most three batches are in
memory per upload.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart import request
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from ..errors import BadRequest, DiskFull, GremlinError, TooLarge

RECEIVE_KEY = "gremlin.receive"
BATCH_BYTES = 1024 * 1024
IOV_MAX = 512  # below Linux's 1024


class ClientGone(GremlinError):
    """The client disconnected before the body was complete."""

    status = 400
    code = "client_disconnected"


class StreamingHTTPConnection(TrioASGIHTTPConnection):
    """Quart's trio connection, except that streamed views get the raw `receive`."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if self._streams_body():
            self.scope[RECEIVE_KEY] = receive  # type: ignore[literal-required]
            receive = _empty_body()
        await super().__call__(receive, send)

    def _streams_body(self) -> bool:
        try:
            adapter = self.app.url_map.bind("localhost")
            endpoint, _ = adapter.match(self.scope["path"], method=self.scope["method"])
        except HTTPException:
            return False
        view = self.app.view_functions.get(str(endpoint))
        return bool(getattr(view, "gremlin_streams_body", False))


def _empty_body() -> ASGIReceiveCallable:
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await trio.sleep_forever()  # the real stream belongs to the view

    return receive


class BodyReader:
    """The raw body of this request as chunks, refusing more than `limit` bytes (413).

    The chunk that would go past `limit` is never yielded, so none of it is stored."""

    def __init__(
        self,
        receive: ASGIReceiveCallable,
        limit: int,
        refuse: Callable[[int], GremlinError] | None = None,
    ) -> None:
        self._receive = receive
        self.limit = limit
        self._refuse = refuse or too_large
        self.received = 0
        self.complete = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("the connection closed before the upload was complete")
            body = cast(bytes, message.get("body", b""))
            self.complete = not message.get("more_body", False)
            self.received += len(body)
            if self.received > self.limit:
                raise self._refuse(self.limit)
            if body:
                yield body


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the upload is larger than this site accepts ({limit} bytes)",
        hint="Ask the site's admin to raise max_upload_bytes.",
    )


def body_reader(limit: int, refuse: Callable[[int], GremlinError] | None = None) -> BodyReader:
    """This request's body, for a view marked `streams_body`. Checks Content-Length first.

    `refuse(limit)` is the error for a body over `limit` (default: over max_upload_bytes)."""
    refuse = refuse or too_large
    receive = request.scope.get(RECEIVE_KEY)
    if receive is None:
        raise RuntimeError(f"{request.endpoint} reads its body but is not marked streams_body")
    length = request.headers.get("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(length) > limit:
            raise refuse(limit)
    return BodyReader(cast(ASGIReceiveCallable, receive), limit, refuse)


def translate_os_error(e: OSError, path: Path) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(str(path.parent), hint=DiskFull.UPLOAD_HINT)
    return e


def _write_all(fd: int, parts: list[bytes], digest: Any) -> None:
    """writev the parts (no copying them into one buffer: that cost more than the write)."""
    views = [memoryview(part) for part in parts]
    while views:
        n = os.writev(fd, views[:IOV_MAX])
        while n:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0
    if digest is not None:
        for part in parts:
            digest.update(part)


async def write_stream(
    chunks: AsyncIterator[bytes], fd: int, *, digest: Any = None, path: Path
) -> int:
    """Append `chunks` to the open file `fd` (updating `digest`); returns the bytes written.

    Raises DiskFull (507) on ENOSPC; what was written before stays (the caller decides)."""
    send, recv = trio.open_memory_channel[tuple[list[bytes], int]](1)
    written = 0

    async def writer() -> None:
        nonlocal written
        async with recv:
            async for parts, size in recv:
                try:
                    await trio.to_thread.run_sync(_write_all, fd, parts, digest)
                except OSError as e:
                    raise translate_os_error(e, path) from e
                written += size

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, name=f"write-{path.name}")
            async with send:
                parts: list[bytes] = []
                size = 0
                async for chunk in chunks:
                    parts.append(chunk)
                    size += len(chunk)
                    if size >= BATCH_BYTES or len(parts) >= IOV_MAX:
                        await send.send((parts, size))
                        parts, size = [], 0
                if parts:
                    await send.send((parts, size))
    except BaseExceptionGroup as group:
        raise _leaf(group) from None
    return written


def _leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one meaningful error of a writer/receiver pair (the other is usually Cancelled)."""
    leaves = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif not isinstance(e, trio.Cancelled):
            leaves.append(e)
    return leaves[0] if len(leaves) == 1 else group


async def fsync_fd(fd: int, path: Path) -> None:
    try:
        await trio.to_thread.run_sync(os.fsync, fd)
    except OSError as e:
        raise translate_os_error(e, path) from e


def new_digest() -> Any:
    return hashlib.sha256()

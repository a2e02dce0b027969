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

import contextlib
import errno
import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart import Quart, request
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from ..errors import BadRequest, DiskFull, GremlinError, TooLarge
from ..units import human_size
from .rawbody import ClientGone, RawBody

RECEIVE_KEY = "gremlin.receive"
RAW_KEY = "gremlin.raw_body"  # set by rawhttp for the requests whose socket it reads
SMALL_BODY_BYTES = 2 * 1024 * 1024  # any body but an upload's (Quart's MAX_CONTENT_LENGTH)
# A small body the server answered without reading is read and dropped, this long at most, so
# the keep-alive connection serves the client's next request (hypercorn stops reading a
# connection while its queue to the app is full); a client slower than this reconnects.
UNREAD_BODY_SECONDS = 10.0
BATCH_BYTES = 1024 * 1024
IOV_MAX = 512  # below Linux's 1024


class StreamingHTTPConnection(TrioASGIHTTPConnection):
    """Quart's trio connection, except that streamed views get the raw `receive`."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if self._streams_body():
            self.scope[RECEIVE_KEY] = receive  # type: ignore[literal-required]
            receive = _empty_body()
        await super().__call__(receive, send)

    def _streams_body(self) -> bool:
        return streams_body_route(self.app)(self.scope["method"], self.scope["path"])


def streams_body_route(app: Quart) -> Callable[[str, str], bool]:
    """(method, path) -> is it served by a view marked `auth.streams_body`?"""

    def streams(method: str, path: str) -> bool:
        try:
            endpoint, _ = app.url_map.bind("localhost").match(path, method=method)
        except HTTPException:
            return False
        view = app.view_functions.get(str(endpoint))
        return bool(getattr(view, "gremlin_streams_body", False))

    return streams


def closing_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's headers saying `Connection: close` (instead of any Connection header)."""
    return [(k, v) for k, v in headers if k.lower() != b"connection"] + [(b"connection", b"close")]


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

    async def copy_to(self, fd: int, *, digest: Any = None, path: Path) -> int:
        """The rest of the body appended to `fd` (see `write_stream`)."""
        async with contextlib.aclosing(self.chunks()) as chunks:
            return await write_stream(chunks, fd, digest=digest, path=path)


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the upload is larger than this site accepts: {human_size(limit)} ({limit} bytes)",
        hint="Ask the site's admin to raise max_upload_bytes.",
    )


def body_reader(limit: int, refuse: Callable[[int], GremlinError] | None = None) -> AnyBodyReader:
    """This request's body, for a view marked `streams_body`. Checks Content-Length first.

    `refuse(limit)` is the error for a body over `limit` (default: over max_upload_bytes).
    An upload request that `rawhttp` took off hypercorn's hands reads from its socket."""
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
    raw = request.scope.get(RAW_KEY)
    if isinstance(raw, RawBody):
        return RawBodyReader(raw, limit, refuse)
    return BodyReader(cast(ASGIReceiveCallable, receive), limit, refuse)


class RawBodyReader:
    """`BodyReader`'s interface over a `RawBody` (whose length, Content-Length, was checked
    against the limit by `body_reader`)."""

    def __init__(self, raw: RawBody, limit: int, refuse: Callable[[int], GremlinError]) -> None:
        self._raw = raw
        self.limit = limit
        self._refuse = refuse

    @property
    def received(self) -> int:
        return self._raw.received

    @property
    def complete(self) -> bool:
        return self._raw.complete

    def chunks(self) -> AsyncGenerator[bytes, None]:
        return self._raw.chunks()

    async def copy_to(self, fd: int, *, digest: Any = None, path: Path) -> int:
        try:
            return await self._raw.copy_to(fd, digest, self.limit, self._refuse)
        except OSError as e:
            raise translate_os_error(e, path) from e

    async def copy_until(
        self, fd: int, data: bytes, delimiter: bytes, *, digest: Any, limit: int, path: Path
    ) -> tuple[int, bytes]:
        """See `RawBody.copy_until`; more than `limit` bytes before the delimiter -> 413."""
        try:
            return await self._raw.copy_until(fd, digest, data, delimiter, limit, too_large)
        except OSError as e:
            raise translate_os_error(e, path) from e


AnyBodyReader = BodyReader | RawBodyReader


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

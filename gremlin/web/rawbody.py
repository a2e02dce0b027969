"""An upload's body read straight from its socket, for `rawhttp`'s upload requests.

hypercorn hands a body to the app as ASGI messages: 64 KiB reads, each parsed by h11, queued,
and copied several times; measured on this stack at 4-8 s of CPU per GiB, so a 1 GiB upload
ran at 0.1-0.2 GiB/s (bench/bench_upload.py). For the views that stream their body to disk
(`auth.streams_body`), `rawhttp` leaves the socket to this module instead:

- `chunks()`: the body as large chunks (for the multipart parser);
- `copy_to(fd, digest)`: the whole body into an open file with two worker threads and no
  event-loop work per chunk: one receives into a few reusable 1 MiB buffers and writes them
  (`recv_into`, `os.write`), the other updates the SHA-256 (hashlib and both system calls
  release the GIL, so the hash runs beside the copy on a second core). Every
  `WRITEBACK_BYTES` the kernel is asked to start writing back what has been written
  (`sync_file_range`), so the caller's final fsync has little left to do.

Both honour the same limit and refusal as `bodies.BodyReader`; a client that goes away (or
sends nothing for `IDLE_SECONDS`) raises `ClientGone`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import trio

from ..errors import GremlinError
from .rawcopy import BUFFER_BYTES, IDLE_SECONDS, POLL_SECONDS, ClientGone, Copier

__all__ = ["BUFFER_BYTES", "ClientGone", "RawBody"]

UPLOAD_THREADS = 32  # uploads copying at once (more wait, their bodies left in the socket)


class RawBody:
    """The body of one request on `sock`: `prefix` (bytes already read with the head), then
    the socket, `length` bytes in all (Content-Length). `before_read` runs once before the
    first byte is read (it sends `100 Continue` when the client waits for it)."""

    def __init__(
        self,
        sock: socket.socket,
        prefix: bytes,
        length: int,
        before_read: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._sock = sock
        self._prefix = prefix[:length]
        self.length = length
        self.received = 0  # bytes of the body consumed so far
        self._before_read = before_read

    @property
    def complete(self) -> bool:
        return self.received >= self.length

    async def _started(self) -> None:
        if self._before_read is not None:
            before, self._before_read = self._before_read, None
            await before()

    def _take_prefix(self, room: int) -> bytes:
        data, self._prefix = self._prefix[:room], self._prefix[room:]
        return data

    async def chunks(self, size: int = BUFFER_BYTES) -> AsyncGenerator[bytes, None]:
        """The rest of the body, in chunks of at most `size` bytes."""
        await self._started()
        while not self.complete:
            room = min(size, self.length - self.received)
            data = self._take_prefix(room)
            if not data:
                with trio.move_on_after(IDLE_SECONDS) as idle:
                    await trio.lowlevel.wait_readable(self._sock)
                if idle.cancelled_caught:
                    raise ClientGone(f"the client sent nothing for {IDLE_SECONDS:g}s")
                try:
                    data = self._sock.recv(room)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise ClientGone(f"the connection failed: {e.strerror or e}") from e
                if not data:
                    raise ClientGone("the connection closed before the body was complete")
            self.received += len(data)
            yield data

    async def copy_to(
        self, fd: int, digest: Any, limit: int, refuse: Callable[[int], GremlinError]
    ) -> int:
        """Append the rest of the body to `fd` (updating `digest`); returns the bytes written.

        More than `limit` bytes left -> `refuse(limit)` before any is read. On an error,
        what was written stays in the file (the caller decides)."""
        if self.length - self.received > limit:
            raise refuse(limit)
        written, _ = await self._copy(fd, digest, b"", None, limit, refuse)
        return written

    async def copy_until(
        self,
        fd: int,
        digest: Any,
        data: bytes,
        delimiter: bytes,
        limit: int,
        refuse: Callable[[int], GremlinError],
    ) -> tuple[int, bytes]:
        """`data` (already taken from this body), then the body, appended to `fd` up to the
        first `delimiter` (b"\\n--" + a multipart boundary; a CR before it is not written
        either); returns (bytes written, the bytes read after the delimiter's line break,
        from its "--" on). No delimiter before the body ends -> BadRequest."""
        return await self._copy(fd, digest, data, delimiter, limit, refuse)

    async def _copy(
        self,
        fd: int,
        digest: Any,
        data: bytes,
        delimiter: bytes | None,
        limit: int,
        refuse: Callable[[int], GremlinError],
    ) -> tuple[int, bytes]:
        await self._started()
        first = data + self._take_prefix(self.length - self.received)
        self.received += len(first) - len(data)
        copier = Copier(self._sock, fd, digest, self.length - self.received)
        copier.delimiter, copier.limit, copier.refuse = delimiter, limit, refuse
        try:
            await _in_thread(copier.run, copier.stop, first)
        finally:
            self.received += copier.pulled
        return copier.written, copier.rest


_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("raw_uploads")


def _limiter() -> trio.CapacityLimiter:
    """The uploads' own worker threads (one per upload copying): a slow or stalled upload holds
    its thread, and must not take one of the default pool's, which the rest of the server
    (file serving, database reads, password checks) needs."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(UPLOAD_THREADS)
        _LIMITER.set(limiter)
        return limiter


async def _in_thread(fn: Callable[..., None], stop: threading.Event, *args: Any) -> None:
    """`fn` in a worker thread; if this task is cancelled, `stop` is set and the thread is
    waited for (it polls `stop`), so it never outlives the file descriptors it uses."""
    finished = threading.Event()

    def run() -> None:
        try:
            fn(*args)
        finally:
            finished.set()

    try:
        await trio.to_thread.run_sync(run, limiter=_limiter(), abandon_on_cancel=True)
    except trio.Cancelled:
        stop.set()
        with trio.CancelScope(shield=True):
            while not finished.is_set():
                await trio.sleep(POLL_SECONDS / 4)
        raise

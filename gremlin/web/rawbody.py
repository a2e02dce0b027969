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

import ctypes
import ctypes.util
import os
import queue
import select
import socket
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import trio

from ..errors import BadRequest, GremlinError

BUFFER_BYTES = 1024 * 1024
BUFFERS = 4  # in flight per upload: receiving, hashing, and two spare
WRITEBACK_BYTES = 64 * 1024 * 1024
IDLE_SECONDS = 120.0  # a stalled client is dropped (a tus client resumes)
POLL_SECONDS = 0.1  # how soon a worker thread notices cancellation

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
SYNC_FILE_RANGE_WRITE = 2


class ClientGone(GremlinError):
    """The client disconnected (or stalled) before the body was complete."""

    status = 400
    code = "client_disconnected"


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes to disk now (no wait); a hint only."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


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
        copier = _Copier(self._sock, fd, digest, self.length - self.received)
        copier.delimiter, copier.limit, copier.refuse = delimiter, limit, refuse
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run_until_cancelled, copier.hash_loop, copier.stop)
                nursery.start_soon(_run_until_cancelled, copier.copy_loop, copier.stop, first)
        except BaseExceptionGroup as group:
            raise _first_real(group) from None
        finally:
            self.received += copier.pulled
        return copier.written, copier.rest


async def _run_until_cancelled(fn: Callable[..., None], stop: threading.Event, *args: Any) -> None:
    """`fn` in a worker thread; if this task is cancelled, `stop` is set and the thread is
    waited for (it polls `stop`), so it never outlives the file descriptors it uses."""
    done = trio.Event()

    async def run() -> None:
        try:
            await trio.to_thread.run_sync(fn, *args)
        finally:
            done.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            try:
                await done.wait()
            except trio.Cancelled:
                stop.set()
                raise
    except BaseException:
        stop.set()
        raise


def _first_real(group: BaseExceptionGroup[Any]) -> BaseException:
    found: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif not isinstance(e, (trio.Cancelled, _Stopped)):
            found.append(e)
    return found[0] if found else group


class _Stopped(Exception):
    """The other thread failed or the task was cancelled: this one stops too."""


class _Copier:
    """The two threads of `RawBody._copy` and what they share."""

    def __init__(self, sock: socket.socket, fd: int, digest: Any, left: int) -> None:
        self.sock, self.fd, self.digest = sock, fd, digest
        self.left = left  # bytes of the body still in the socket
        self.pulled = 0  # bytes taken from the socket
        self.written = 0  # bytes written to the file
        self.rest = b""  # read past the delimiter
        self.delimiter: bytes | None = None
        self.limit = 0
        self.refuse: Callable[[int], GremlinError] = lambda limit: GremlinError("too large")
        self.stop = threading.Event()
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        for _ in range(BUFFERS):
            self.free.put(bytearray(BUFFER_BYTES))

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                return q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue

    def _recv_into(self, view: memoryview) -> int:
        """Fill `view` with what the socket has (at least one byte); waits up to IDLE_SECONDS."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        idle = 0.0
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                n = self.sock.recv_into(view)
            except BlockingIOError:
                if not poller.poll(POLL_SECONDS * 1000):
                    idle += POLL_SECONDS
                    if idle >= IDLE_SECONDS:
                        raise ClientGone(f"the client sent nothing for {IDLE_SECONDS:g}s") from None
                continue
            except OSError as e:
                raise ClientGone(f"the connection failed: {e.strerror or e}") from e
            if n == 0:
                raise ClientGone("the connection closed before the body was complete")
            return n

    def _fill(self, view: memoryview) -> int:
        """Receive into `view`: at least one byte, then whatever else is already there."""
        n = self._recv_into(view)
        while n < len(view):
            try:
                more = self.sock.recv_into(view[n:], 0, socket.MSG_DONTWAIT)
            except OSError:
                break  # (BlockingIOError: nothing more yet) an error comes back next time
            if more == 0:
                break
            n += more
        self.left -= n
        self.pulled += n
        return n

    def copy_loop(self, carry: bytes) -> None:
        """Receive, find the end (the body's, or the delimiter), write, pass to the hash."""
        delimiter = self.delimiter
        synced = 0
        try:
            while True:
                if len(carry) > BUFFER_BYTES // 2:
                    buf = bytearray(len(carry) + BUFFER_BYTES)  # a one-off: not pooled
                else:
                    buf = self._get(self.free)
                view = memoryview(buf)
                n = len(carry)
                view[:n] = carry
                room = min(len(buf) - n, self.left)
                if room > 0 and (delimiter is None or buf.find(delimiter, 0, n) < 0):
                    n += self._fill(view[n : n + room])
                if delimiter is None:
                    end, done, carry = n, self.left == 0, b""
                elif (found := buf.find(delimiter, 0, n)) >= 0:  # \n--boundary
                    end = found - 1 if found and buf[found - 1] == 13 else found  # \r\n--
                    done, self.rest = True, bytes(view[found + 1 : n])
                elif self.left == 0:
                    raise BadRequest("the multipart body ends inside the file part")
                else:  # keep what could be the start of the delimiter, and a CR before it
                    end, done = n - min(len(delimiter), n), False
                    carry = bytes(view[end:n])
                if self.written + end > self.limit:
                    raise self.refuse(self.limit)
                self._write(view[:end])
                self.full.put((buf, end))
                if self.written - synced >= WRITEBACK_BYTES:
                    start_writeback(self.fd, synced, self.written - synced)
                    synced = self.written
                if done:
                    return
        finally:
            self.full.put(None)

    def _write(self, view: memoryview) -> None:
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue  # an OSError (ENOSPC ...) is translated by the caller
            view = view[n:]
            self.written += n

    def hash_loop(self) -> None:
        while True:
            item = self._get(self.full)
            if item is None:
                return
            buf, n = item
            if self.digest is not None:
                self.digest.update(memoryview(buf)[:n])
            if len(buf) == BUFFER_BYTES:
                self.free.put(buf)

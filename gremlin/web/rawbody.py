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
UPLOAD_THREADS = 32  # uploads copying at once (more wait, their bodies left in the socket)

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


def _boundary(buf: bytearray, n: int, delimiter: bytes, more: bool) -> tuple[int, int | None]:
    """In buf[:n], the multipart delimiter (b"\\n--" + boundary) that ends the part, as
    werkzeug's decoder recognises it: followed by "--" or by optional blanks and a line break.
    (index, None) if found; else (-1, where the bytes to keep for the next look start): the
    last len(delimiter) bytes, or from just before a match that cannot be told yet (`more`:
    the body has more bytes to come)."""
    pos = 0
    while (at := buf.find(delimiter, pos, n)) >= 0:
        after = bytes(buf[at + len(delimiter) : min(n, at + len(delimiter) + 2)])
        if len(after) < 2 and more:
            return -1, max(at - 1, 0)
        if after.startswith(b"--") or after[:1] in (b"", b" ", b"\t", b"\r", b"\n"):
            return at, None
        pos = at + 1
    return -1, n - min(len(delimiter), n)


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
        self.base = 0  # the file's size before this copy
        self.delimiter: bytes | None = None
        self.limit = 0
        self.refuse: Callable[[int], GremlinError] = lambda limit: GremlinError("too large")
        self.stop = threading.Event()
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        for _ in range(BUFFERS):
            self.free.put(bytearray(BUFFER_BYTES))

    def run(self, first: bytes) -> None:
        """The copy here, the hash in a thread of its own beside it (both under one slot of
        the uploads' limiter). Either failing stops the other; cancellation (`stop` set from
        the event loop) ends both quietly."""
        failed: list[BaseException] = []

        def hash_guarded() -> None:
            try:
                self.hash_loop()
            except _Stopped:
                pass
            except BaseException as e:
                failed.append(e)
                self.stop.set()

        self.base = os.lseek(self.fd, 0, os.SEEK_END)  # where this copy's bytes start
        hasher = threading.Thread(target=hash_guarded, name="gremlin-upload-hash", daemon=True)
        hasher.start()
        try:
            self.copy_loop(first)
        except _Stopped:
            pass
        except BaseException:
            self.stop.set()
            raise
        finally:
            hasher.join()
        if failed:
            raise failed[0]

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
                if room > 0 and (
                    delimiter is None or _boundary(buf, n, delimiter, True)[1] is not None
                ):
                    n += self._fill(view[n : n + room])
                if delimiter is None:
                    end, done, carry = n, self.left == 0, b""
                elif (found := _boundary(buf, n, delimiter, self.left > 0))[1] is None:
                    at = found[0]  # \n--boundary, and a CR before it is the delimiter's too
                    end = at - 1 if at and buf[at - 1] == 13 else at
                    done, self.rest = True, bytes(view[at + 1 : n])
                elif self.left == 0:
                    raise BadRequest("the multipart body ends inside the file part")
                else:  # keep what could be the start of the delimiter, and a CR before it
                    end, done = found[1], False
                    carry = bytes(view[end:n])
                if self.written + end > self.limit:
                    raise self.refuse(self.limit)
                self._write(view[:end])
                self.full.put((buf, end))
                if self.written - synced >= WRITEBACK_BYTES:
                    start_writeback(self.fd, self.base + synced, self.written - synced)
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

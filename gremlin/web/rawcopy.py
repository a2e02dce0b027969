"""The worker-thread side of `rawbody.RawBody`: the copy of an upload's body from its socket
into a file, and its SHA-256 beside it (see rawbody.py). Plain blocking code: sockets,
`os.write`, `queue.Queue`; the event loop's side (limits, cancellation) is in rawbody.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

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


class Copier:
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

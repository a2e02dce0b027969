"""The control socket: JSON lines over a Unix stream socket, file descriptors passed with
SCM_RIGHTS (what `socket.send_fds`/`recv_fds` do, on trio sockets).

AF_UNIX paths are limited to 107 bytes; a longer site path is reached through
/proc/self/fd/<dir fd>/gremlin.sock, which the kernel resolves like any other path.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

MAX_LINE_BYTES = 64 * 1024
MAX_FDS = 4
_UNIX_PATH_MAX = 107


class ControlClosed(Exception):
    """The other side closed the control connection (or died)."""


@contextlib.contextmanager
def short_path(path: Path) -> Iterator[str]:
    """A path for bind/connect that fits in sockaddr_un."""
    if len(os.fsencode(path)) <= _UNIX_PATH_MAX:
        yield str(path)
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


async def listen_control(path: Path) -> tuple[trio.socket.SocketType, int]:
    """Listen on `path` (a stale socket file is replaced), owner-only. (socket, inode)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_path(path) as where:
            await sock.bind(where)
        os.chmod(path, 0o600)
        sock.listen(4)
    except BaseException:
        sock.close()
        raise
    return sock, os.stat(path).st_ino


def unlink_if_ours(path: Path, inode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_ino == inode:
            path.unlink()


async def connect_control(path: Path) -> ControlChannel:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_path(path) as where:
            await sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return ControlChannel(sock)


class ControlChannel:
    """One control connection: `send` a message (maybe with fds), `receive` the next one."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self._buffer = b""
        self._fds: list[int] = []

    async def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = json.dumps(message).encode() + b"\n"
        try:
            if fds:
                ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                sent = await self.sock.sendmsg([data], ancillary)
            else:
                sent = await self.sock.send(data)
            while sent < len(data):
                data = data[sent:]
                sent = await self.sock.send(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ControlClosed(str(e)) from e

    async def receive(self) -> tuple[dict[str, Any], list[int]]:
        """The next message and the fds that came with it (the caller owns them)."""
        while b"\n" not in self._buffer:
            try:
                data, ancillary, flags, _ = await self.sock.recvmsg(
                    MAX_LINE_BYTES, socket.CMSG_SPACE(MAX_FDS * 4)
                )
            except ConnectionResetError as e:
                raise ControlClosed(str(e)) from e
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                    self._fds.extend(received)
            if flags & socket.MSG_CTRUNC:
                self._close_fds()
                raise ControlClosed("file descriptors were truncated")
            if not data:
                self._close_fds()
                raise ControlClosed("connection closed")
            self._buffer += data
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ControlClosed("message too long")
        line, _, self._buffer = self._buffer.partition(b"\n")
        fds, self._fds = self._fds, []
        try:
            message = json.loads(line)
        except ValueError as e:
            for fd in fds:
                os.close(fd)
            raise ControlClosed(f"not a JSON message: {line[:80]!r}") from e
        return message, fds

    def peer(self) -> tuple[int, int, int]:
        """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
        raw = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return pid, uid, gid

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def close(self) -> None:
        self._close_fds()
        self.sock.close()

    async def __aenter__(self) -> ControlChannel:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

"""RawBody: an upload's body read from a real socket into a real file, with its SHA-256."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from gremlin.errors import BadRequest, TooLarge
from gremlin.web.rawbody import BUFFER_BYTES, ClientGone, RawBody

BOUNDARY = b"gremlin-boundary-7f3a"


def refuse(limit: int) -> TooLarge:
    return TooLarge(f"over {limit}")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def send_later(sock: socket.socket, data: bytes, *, close: bool = True) -> threading.Thread:
    def send() -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the reader stopped early (a refusal): what the test checks
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


async def copy_to(raw: RawBody, path: Path, limit: int = 1 << 40) -> tuple[int, str]:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        written = await raw.copy_to(fd, digest, limit, refuse)
    finally:
        os.close(fd)
    return written, digest.hexdigest()


@pytest.mark.parametrize("size", [0, 1, BUFFER_BYTES - 1, BUFFER_BYTES, 3 * BUFFER_BYTES + 17])
async def test_copy_to_writes_and_hashes_the_body(pair, tmp_path: Path, size: int) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    body = os.urandom(size)
    prefix = body[:1000]  # what the server read along with the request head
    thread = send_later(theirs, body[len(prefix) :])
    raw = RawBody(ours, prefix, len(body))
    written, sha = await copy_to(raw, tmp_path / "out")
    thread.join()
    assert written == size
    assert (tmp_path / "out").read_bytes() == body
    assert sha == hashlib.sha256(body).hexdigest()
    assert raw.complete and raw.received == size


async def test_copy_to_leaves_the_next_request_in_the_socket(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    body = os.urandom(BUFFER_BYTES + 5)
    thread = send_later(theirs, body + b"GET /next HTTP/1.1\r\n\r\n")
    raw = RawBody(ours, b"", len(body))
    await copy_to(raw, tmp_path / "out")
    thread.join()
    assert (tmp_path / "out").read_bytes() == body
    ours.setblocking(True)
    assert ours.recv(100) == b"GET /next HTTP/1.1\r\n\r\n"


async def test_a_client_that_goes_away_is_client_gone(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    body = os.urandom(2 * BUFFER_BYTES)
    thread = send_later(theirs, body[: BUFFER_BYTES + 100])  # then EOF
    raw = RawBody(ours, b"", len(body))
    with pytest.raises(ClientGone):
        await copy_to(raw, tmp_path / "out")
    thread.join()
    # What arrived stays on disk for a resume: the caller decides.
    assert (tmp_path / "out").read_bytes() == body[: BUFFER_BYTES + 100]


async def test_over_the_limit_is_refused_before_reading(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    raw = RawBody(ours, b"", 5000)
    with pytest.raises(TooLarge):
        await copy_to(raw, tmp_path / "out", limit=4999)
    assert raw.received == 0


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    sock.setblocking(True)
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def file_part(data: bytes, *, newline: bytes = b"\r\n") -> tuple[bytes, bytes]:
    """(what follows the part's headers, the rest of the body) of a multipart body."""
    after = newline + b"--" + BOUNDARY + newline
    after += b'Content-Disposition: form-data; name="title"' + newline + newline + b"T"
    after += newline + b"--" + BOUNDARY + b"--" + newline
    return data, after


async def copy_until(raw: RawBody, data: bytes, path: Path, limit: int = 1 << 40):  # type: ignore[no-untyped-def]
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        written, rest = await raw.copy_until(fd, digest, data, b"\n--" + BOUNDARY, limit, refuse)
    finally:
        os.close(fd)
    return written, rest, digest.hexdigest()


@pytest.mark.parametrize(
    "size",
    # the boundary inside the first buffer, right at its end, split across two, at the start
    [0, 10, BUFFER_BYTES - 3, BUFFER_BYTES - 8, BUFFER_BYTES, BUFFER_BYTES + 1, 2 * BUFFER_BYTES],
)
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
async def test_copy_until_stops_at_the_boundary(
    pair, tmp_path: Path, size: int, newline: bytes
) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    data = os.urandom(size).replace(b"\n", b"x").replace(b"\r", b"y")  # no line breaks
    body, after = file_part(data, newline=newline)
    stream = body + after
    taken = stream[:300]  # what the decoder had already read
    thread = send_later(theirs, stream[300:])
    raw = RawBody(ours, b"", len(stream) - 300)
    written, rest, sha = await copy_until(raw, taken, tmp_path / "out")
    thread.join()
    assert written == size
    assert (tmp_path / "out").read_bytes() == data
    assert sha == hashlib.sha256(data).hexdigest()
    # The decoder reads on from the boundary's "--": everything after the data, all of it.
    assert rest + recv_exactly(ours, raw.length - raw.received) == after[len(newline) :]


async def test_copy_until_without_a_boundary_is_a_bad_request(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    body = os.urandom(BUFFER_BYTES + 10).replace(b"\n", b"x")
    thread = send_later(theirs, body)
    raw = RawBody(ours, b"", len(body))
    with pytest.raises(BadRequest):
        await copy_until(raw, b"", tmp_path / "out")
    thread.join()


async def test_copy_until_refuses_a_file_over_its_limit(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    data = os.urandom(3 * BUFFER_BYTES).replace(b"\n", b"x")
    body, after = file_part(data)
    thread = send_later(theirs, body + after)
    raw = RawBody(ours, b"", len(body + after))
    with pytest.raises(TooLarge):
        await copy_until(raw, b"", tmp_path / "out", limit=BUFFER_BYTES)
    ours.shutdown(socket.SHUT_RDWR)  # the sender, blocked on a full socket, gives up
    thread.join()
    assert (tmp_path / "out").stat().st_size <= BUFFER_BYTES


async def test_a_stalled_upload_holds_no_default_thread_and_cancels_cleanly(  # type: ignore[no-untyped-def]
    pair, tmp_path: Path
) -> None:
    ours, theirs = pair
    trio.to_thread.current_default_thread_limiter().total_tokens = 1
    raw = RawBody(ours, b"", 10 * BUFFER_BYTES)  # the client sends nothing
    async with trio.open_nursery() as nursery:
        cancelled = trio.Event()

        async def stalled() -> None:
            await copy_to(raw, tmp_path / "out")
            cancelled.set()  # never: the copy only ends by cancellation

        nursery.start_soon(stalled)
        await trio.sleep(0.3)
        with trio.fail_after(5):  # the server's other thread work still runs
            assert await trio.to_thread.run_sync(lambda: 41 + 1) == 42
        nursery.cancel_scope.cancel()  # a plain Cancelled ends the copy: no group escapes
    assert not cancelled.is_set()
    assert raw.received == 0


async def test_copy_until_skips_a_boundary_lookalike(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = pair
    # In a CRLF body only "\r\n--boundary" followed by "--" or a line break ends the part.
    data = b"a" * 1000 + b"\n--" + BOUNDARY + b"X and on" + b"b" * 1000
    body, after = file_part(data)
    thread = send_later(theirs, body + after)
    raw = RawBody(ours, b"", len(body + after))
    written, rest, _ = await copy_until(raw, b"", tmp_path / "out")
    thread.join()
    assert (tmp_path / "out").read_bytes() == data and written == len(data)
    assert rest + recv_exactly(ours, raw.length - raw.received) == after[2:]

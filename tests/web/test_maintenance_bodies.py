"""The maintenance gate refuses writes before any view runs, so nothing reads their bodies:
over a real socket, a keep-alive client's next request on that connection must not hang
(hypercorn stops reading a connection while its queue to the app is full)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime
from gremlin.web.bodies import streams_body_route
from gremlin.web.maintenance import maintenance_gate
from gremlin.web.server import listen_socket, serve_http

from .conftest import add_user, bearer
from .test_rawhttp import Conn

KIB = 1024
BROWSER = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


@asynccontextmanager
async def serving(app: QuartTrio, runtime: Runtime) -> AsyncIterator[str]:
    """The app behind the gate, as `gremlin serve` runs it, on a real socket (port 0)."""
    sock = listen_socket("127.0.0.1:0")
    stop = trio.Event()
    serve = partial(
        serve_http,
        maintenance_gate(app, runtime),
        sock,
        stop,
        grace_seconds=2,
        raw_route=streams_body_route(app),
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve)
        try:
            yield url
        finally:
            stop.set()


def refused_then_next(
    url: str, method: str, path: str, headers: dict[str, str], size: int
) -> tuple[int, dict[str, str], int | None]:
    """(status and headers of the refusal, status of a GET on the same connection or None
    when the server closed it). A hang is a socket timeout."""
    conn = Conn(url)
    conn.sock.settimeout(20)
    try:
        if "Transfer-Encoding" in headers:  # h11 sends the body in chunks
            conn.send_head(method, path, headers)
            conn.send_body(b"x" * size)
            status, answer, _ = conn.response()
            conn.h11.start_next_cycle()
        else:
            status, answer, _ = conn.request(method, path, headers, b"x" * size)
        if answer.get("connection", "").lower() == "close":
            return status, answer, None
        return status, answer, conn.request("GET", "/healthz", {})[0]
    finally:
        conn.close()


async def test_a_refused_write_leaves_the_keep_alive_connection_usable(
    app: QuartTrio, runtime: Runtime
) -> None:
    _, token = await add_user(runtime.store, "ann")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refusals = [
        ("PATCH", "/api/v1/media/x", bearer(token), 300 * KIB),
        ("POST", "/collections", form, 600 * KIB),
        ("POST", "/no/such/path", {}, 2 * 1024 * KIB),
        ("POST", "/collections", {**form, "Transfer-Encoding": "chunked"}, 600 * KIB),
        ("POST", "/m/x/comments", {**form, "Accept": BROWSER}, 600 * KIB),  # the 503 page
    ]
    async with serving(app, runtime) as url:
        runtime.set_mode(Mode.MAINTENANCE)
        for method, path, headers, size in refusals:
            ask = partial(refused_then_next, url, method, path, headers, size)
            status, answer, then = await trio.to_thread.run_sync(ask)
            assert status == 503 and answer["retry-after"], (path, status)
            assert then == 200, (path, size, answer)


def refused_large(url: str, size: int) -> tuple[int, dict[str, str], bytes]:
    """Send a large body's head and only part of it: the refusal must come, say
    `Connection: close`, and the server must close (no wait for the rest)."""
    conn = Conn(url)
    conn.sock.settimeout(20)
    try:
        conn.send_head("POST", "/collections", {"Content-Length": str(size)})
        conn.sock.sendall(b"x" * (64 * KIB))
        status, headers, _ = conn.response()
        rest = b""
        while chunk := conn.sock.recv(1 << 16):  # EOF, not a timeout
            rest += chunk
        return status, headers, rest
    finally:
        conn.close()


async def test_a_refused_large_body_is_not_read_the_connection_is_closed(
    app: QuartTrio, runtime: Runtime
) -> None:
    async with serving(app, runtime) as url:
        runtime.set_mode(Mode.MAINTENANCE)
        for size in (3 * 1024 * KIB, 8 * 1024**3):  # over the limit; far over it
            status, headers, rest = await trio.to_thread.run_sync(refused_large, url, size)
            assert status == 503
            assert headers.get("connection", "").lower() == "close", headers
            assert rest == b""

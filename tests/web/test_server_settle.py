"""serve_http's stop: connections already accepted get their request read, and the settle
ends as soon as no accepted connection is idle (gremlin/web/server.py)."""

from __future__ import annotations

import socket
import time
from functools import partial

import trio

from gremlin.web.server import listen_socket, serve_http


async def hello(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _get(conn: socket.socket) -> bytes:
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"hello" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


async def test_stop_without_idle_connections_does_not_wait_the_settle_time() -> None:
    sock = listen_socket("127.0.0.1:0")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = partial(serve_http, hello, sock, stop, grace_seconds=5, settle_seconds=10)
        await nursery.start(serve)
        began = time.monotonic()
        stop.set()
    assert time.monotonic() - began < 5


async def test_an_accepted_connection_gets_its_request_read_during_the_settle() -> None:
    sock = listen_socket("127.0.0.1:0")
    address = sock.getsockname()
    stop = trio.Event()
    settle = 1.0
    async with trio.open_nursery() as nursery:
        serve = partial(serve_http, hello, sock, stop, grace_seconds=5, settle_seconds=settle)
        await nursery.start(serve)
        client = socket.create_connection(address)
        await trio.sleep(0.2)  # accepted, its request not sent yet
        stop.set()
        await trio.sleep(0.1)
        began = time.monotonic()
        reply = await trio.to_thread.run_sync(_get, client)
        client.close()
    assert reply.startswith(b"HTTP/1.1 200") and b"connection: close" in reply.lower()
    # It waited for that request, then ended: well before the settle bound had run out.
    assert time.monotonic() - began < settle - 0.1 + 0.5


async def test_an_idle_connection_holds_the_settle_until_its_bound() -> None:
    sock = listen_socket("127.0.0.1:0")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = partial(serve_http, hello, sock, stop, grace_seconds=5, settle_seconds=0.5)
        await nursery.start(serve)
        client = socket.create_connection(sock.getsockname())
        await trio.sleep(0.2)
        began = time.monotonic()
        stop.set()
    elapsed = time.monotonic() - began
    client.close()
    assert 0.45 <= elapsed < 5

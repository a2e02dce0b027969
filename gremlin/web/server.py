"""The HTTP server: hypercorn's trio worker loop, driven so that a stop is clean.

On `stop`: stop accepting first (close our listening fd), let connections already accepted
get their request read (`settle_seconds` at most: the settle ends as soon as no connection is
idle, i.e. every open one has a request in flight or was told `Connection: close`), then tell
keep-alive connections to finish and give in-flight requests `grace_seconds`. A re-bind or
hypercorn's own shutdown loses requests at that edge (DESIGN.md, measured facts); this order
lost none.

Keep-alive connections: closing an idle one races with a client sending its next request on
it ("server disconnected without sending a response"; 1 per client connection in a handover
test). So from `stop` on, every response says `Connection: close`: during the settle time each
active client gets its answer and opens its next connection, which waits in the listen queue
for whoever accepts next (the new server, in an upgrade handover).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    ConnectionState,
    LifespanState,
    Scope,
)
from hypercorn.utils import wrap_app

from ..errors import GremlinError
from .bodies import closing_headers
from .rawhttp import GremlinTCPServer, RawRoute

log = logging.getLogger(__name__)


def listen_socket(bind: str, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket for HOST:PORT (port 0 picks a free one)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise GremlinError(f"cannot listen on {bind}: {e.strerror or e}", hint=_bind_hint(e)) from e
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _bind_hint(e: OSError) -> str:
    """What to try, by why the address could not be listened on."""
    if e.errno == errno.EADDRINUSE:
        return "Another program uses that port: choose another with --bind HOST:PORT."
    if e.errno == errno.EACCES:
        return "Ports below 1024 need privileges: use a higher port with --bind HOST:PORT."
    if e.errno == errno.EADDRNOTAVAIL:
        return "No interface of this machine has that address: use one it has, or 0.0.0.0."
    return "Give --bind HOST:PORT with an address of this machine (127.0.0.1, 0.0.0.0, ::)."


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


Peer = tuple[Any, ...]


class Connections:
    """The connections accepted and not closed yet, and which of them are idle: no request in
    flight and not told `Connection: close` (a fresh one whose request has not arrived yet, or
    a keep-alive one whose client may be sending its next). Connections are known by their
    peer address; one whose address cannot be read counts as idle until it closes."""

    def __init__(self) -> None:
        self._open: dict[int, Peer | None] = {}
        self._busy: dict[Peer, int] = {}
        self._closing: set[Peer] = set()
        self._changed = trio.Event()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def opened(self, stream: trio.SocketStream) -> None:
        try:
            peer: Peer | None = tuple(stream.socket.getpeername())[:2]
        except OSError:
            peer = None
        self._open[id(stream)] = peer
        self._touch()

    def closed(self, stream: trio.SocketStream) -> None:
        peer = self._open.pop(id(stream), None)
        if peer is not None:
            self._closing.discard(peer)
        self._touch()

    def request(self, peer: Peer, delta: int) -> None:
        self._busy[peer] = self._busy.get(peer, 0) + delta
        if self._busy[peer] <= 0:
            del self._busy[peer]
        self._touch()

    def closing(self, peer: Peer) -> None:
        self._closing.add(peer)
        self._touch()

    def idle(self) -> int:
        return sum(
            1
            for peer in self._open.values()
            if peer is None or (peer not in self._busy and peer not in self._closing)
        )

    async def wait_none_idle(self) -> None:
        while self.idle():
            await self._changed.wait()


class _TrackedListener(trio.abc.Listener[trio.SocketStream]):
    """A listener that records each connection as it is accepted (before its task starts)."""

    def __init__(self, inner: trio.SocketListener, connections: Connections) -> None:
        self.inner, self.connections = inner, connections

    async def accept(self) -> trio.SocketStream:
        stream = await self.inner.accept()
        self.connections.opened(stream)
        return stream

    async def aclose(self) -> None:
        await self.inner.aclose()


def _tracked(
    handler: Callable[[trio.SocketStream], Awaitable[Any]], connections: Connections
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handle(stream: trio.SocketStream) -> None:
        try:
            await handler(stream)
        finally:
            connections.closed(stream)

    return handle


def close_when_stopping(
    app: ASGIFramework, stop: trio.Event, connections: Connections | None = None
) -> ASGIFramework:
    """Add `Connection: close` to every response started once `stop` is set; tell
    `connections` which peers have a request in flight and which were told to close."""

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        client = scope.get("client")
        peer = tuple(client)[:2] if client and connections is not None else None

        async def send_closing(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and stop.is_set():
                message = {**message, "headers": closing_headers(message["headers"])}
                if peer is not None and connections is not None:
                    connections.closing(peer)
            await send(message)

        if peer is None or connections is None:
            await app(scope, receive, send_closing)
            return
        connections.request(peer, +1)
        try:
            await app(scope, receive, send_closing)
        finally:
            connections.request(peer, -1)

    return wrapped


def hypercorn_config(grace_seconds: float) -> Config:
    config = Config()
    config.graceful_timeout = grace_seconds
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 30
    config.h11_max_incomplete_size = 64 * 1024
    return config


async def serve_http(
    app: ASGIFramework,
    sock: socket.socket,
    stop: trio.Event,
    *,
    grace_seconds: float,
    settle_seconds: float = 0.2,
    raw_route: RawRoute = lambda method, path: False,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on the listening `sock` (which this task owns and closes) until `stop`.

    `raw_route(method, path)`: is that a view whose upload body `rawhttp` reads itself?"""
    config = hypercorn_config(grace_seconds)
    tracked = Connections()
    wrapped = wrap_app(close_when_stopping(app, stop, tracked), config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    url = socket_url(sock)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            listener = _TrackedListener(
                trio.SocketListener(trio.socket.from_stdlib_socket(sock)), tracked
            )
            handler = partial(
                GremlinTCPServer,
                wrapped,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
                raw_route=raw_route,
            )
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(
                        trio.serve_listeners,
                        _tracked(handler, tracked),
                        [listener],
                        handler_nursery=connections,
                    )
                )
                log.info("serving url=%s", url)
                task_status.started(url)
                await stop.wait()
                accepting.cancel_scope.cancel()
            await listener.aclose()
            log.info("stopped accepting; draining grace=%.1fs", grace_seconds)
            settle = trio.current_time()
            with trio.move_on_after(settle_seconds):
                await tracked.wait_none_idle()
            log.info(
                "settled in %.3fs; idle connections closed=%d",
                trio.current_time() - settle,
                tracked.idle(),
            )
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + grace_seconds
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

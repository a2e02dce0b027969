"""The HTTP server: hypercorn's trio worker loop, driven so that a stop is clean.

On `stop`: stop accepting first (close our listening fd), let connections already accepted
get their request read (`settle_seconds`), then tell keep-alive connections to finish and give
in-flight requests `grace_seconds`. A re-bind or hypercorn's own shutdown loses requests at
that edge (DESIGN.md, measured facts); this order lost none.

Keep-alive connections: closing an idle one races with a client sending its next request on
it ("server disconnected without sending a response"; 1 per client connection in a handover
test). So from `stop` on, every response says `Connection: close`: during the settle time each
active client gets its answer and opens its next connection, which waits in the listen queue
for whoever accepts next (the new server, in an upgrade handover).
"""

from __future__ import annotations

import logging
import socket
from functools import partial

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
        raise GremlinError(
            f"cannot listen on {bind}: {e.strerror or e}",
            hint="Another program may use that port: choose another with --bind HOST:PORT.",
        ) from e
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def close_when_stopping(app: ASGIFramework, stop: trio.Event) -> ASGIFramework:
    """Add `Connection: close` to every response started once `stop` is set."""

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_closing(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and stop.is_set():
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_closing)

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
    wrapped = wrap_app(close_when_stopping(app, stop), config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    url = socket_url(sock)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
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
                    partial(trio.serve_listeners, handler, [listener], handler_nursery=connections)
                )
                log.info("serving url=%s", url)
                task_status.started(url)
                await stop.wait()
                accepting.cancel_scope.cancel()
            await listener.aclose()
            log.info("stopped accepting; draining grace=%.1fs", grace_seconds)
            await trio.sleep(settle_seconds)
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + grace_seconds
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

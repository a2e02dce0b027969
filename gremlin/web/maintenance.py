"""Maintenance at the door: while an upgrade copies the data, requests that may write are
answered 503 + Retry-After before they reach a handler; reads go on being served.

Requests that may write and are already in flight when maintenance begins are counted
(`Runtime.write_request`), so the handover can let them finish within
`maintenance_write_grace_seconds`. The store's own freeze backs this up for any write that
slips past (a GET that writes, a write after the grace).

A refused request's body is read and dropped before the answer (a small body's, for at most
`UNREAD_BODY_SECONDS`: gremlin.web.bodies), as the app does for its own refusals: a body left
unread broke the client's next request on that keep-alive connection. A larger body, one
still coming after the time, or one whose length is unknown past the limit is not read: the
answer says `Connection: close`.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from ..errors import Maintenance
from ..runtime import Mode, Runtime
from .bodies import RAW_KEY, SMALL_BODY_BYTES, UNREAD_BODY_SECONDS, closing_headers

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
RETRY_AFTER_SECONDS = 2  # the window is meant to be well under a second
# Set by the gate on a refused request that the app answers with an HTML page (a browser's
# form post); set only here, so a client cannot forge it. The app declares that it renders
# such pages with the same key in its `extensions` (gremlin.web.maintenance_page).
REFUSED_KEY = "gremlin.maintenance_refused"
MACHINE_PREFIXES = ("/api/", "/files/", "/oembed", "/healthz")


def prefers_html(scope: HTTPScope) -> bool:
    """Does this request's Accept header prefer text/html to JSON (a browser's form post)?
    No Accept header, `*/*`, or a tie means JSON; API and file paths are always JSON."""
    if scope["path"].startswith(MACHINE_PREFIXES):
        return False
    accept = b",".join(v for k, v in scope["headers"] if k.lower() == b"accept")
    if not accept:
        return False
    offered = parse_accept_header(accept.decode("latin-1"), MIMEAccept)
    return offered.best_match(("application/json", "text/html")) == "text/html"


async def send_maintenance(send: ASGISendCallable, error: Maintenance) -> None:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def declared_length(scope: HTTPScope) -> int | None:
    """The request's Content-Length (0 without a body), or None when unknown (chunked)."""
    length, chunked = 0, False
    for name, value in scope["headers"]:
        if name.lower() == b"content-length" and value.strip().isdigit():
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            chunked = True
    return None if chunked else length


async def drain_body(scope: HTTPScope, receive: ASGIReceiveCallable) -> bool:
    """Read and drop a refused request's body. True when it ended (within `SMALL_BODY_BYTES`
    and `UNREAD_BODY_SECONDS`): the connection can serve the client's next request."""
    if RAW_KEY in scope:  # its socket is read by gremlin.web.rawhttp, which drains it itself
        return True
    length = declared_length(scope)
    if length is not None and length > SMALL_BODY_BYTES:
        return False
    read = 0
    with trio.move_on_after(UNREAD_BODY_SECONDS):
        while read <= SMALL_BODY_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return False  # the client is gone
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return read <= SMALL_BODY_BYTES
    return False


def closing(send: ASGISendCallable) -> ASGISendCallable:
    """`send`, adding `Connection: close` to the response: its body was left unread."""

    async def send_closing(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": closing_headers(message["headers"])}
        await send(message)

    return send_closing


def drained(receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    """What the app receives of a refused request: an empty body, then only the end."""
    first = True

    async def receive_drained() -> Any:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        while (message := await receive())["type"] == "http.request":
            pass  # what is left of a body not drained: never buffered
        return message

    return receive_drained


def maintenance_gate(asgi_app: Any, runtime: Runtime) -> Any:
    """Wrap an ASGI app: unsafe HTTP methods pass only in NORMAL mode, and are counted.
    Refused requests get the JSON error, or, when they prefer HTML and the app renders
    maintenance pages, go to the app marked as refused: it answers the 503 page without
    running any view."""

    async def gate(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await asgi_app(scope, receive, send)
            return
        if runtime.mode is not Mode.NORMAL:
            if not await drain_body(scope, receive):
                send = closing(send)
            if prefers_html(scope) and REFUSED_KEY in getattr(asgi_app, "extensions", {}):
                refused = {**scope, REFUSED_KEY: True}
                await asgi_app(refused, drained(receive), send)  # the 503 page
            else:
                await send_maintenance(send, Maintenance())
            return
        with runtime.write_request():  # no await since the check: it cannot refuse here
            await asgi_app(scope, receive, send)

    return gate

"""Maintenance at the door: while an upgrade copies the data, requests that may write are
answered 503 + Retry-After before they reach a handler; reads go on being served.

Requests that may write and are already in flight when maintenance begins are counted
(`Runtime.write_request`), so the handover can let them finish within
`maintenance_write_grace_seconds`. The store's own freeze backs this up for any write that
slips past (a GET that writes, a write after the grace).
"""

from __future__ import annotations

import json
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from ..errors import Maintenance
from ..runtime import Mode, Runtime

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
            if prefers_html(scope) and REFUSED_KEY in getattr(asgi_app, "extensions", {}):
                await asgi_app({**scope, REFUSED_KEY: True}, receive, send)  # the 503 page
            else:
                await send_maintenance(send, Maintenance())
            return
        with runtime.write_request():  # no await since the check: it cannot refuse here
            await asgi_app(scope, receive, send)

    return gate

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

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..errors import Maintenance
from ..runtime import Mode, Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
RETRY_AFTER_SECONDS = 2  # the window is meant to be well under a second


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
    """Wrap an ASGI app: unsafe HTTP methods pass only in NORMAL mode, and are counted."""

    async def gate(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await asgi_app(scope, receive, send)
            return
        if runtime.mode is not Mode.NORMAL:
            await send_maintenance(send, Maintenance())
            return
        with runtime.write_request():  # no await since the check: it cannot refuse here
            await asgi_app(scope, receive, send)

    return gate

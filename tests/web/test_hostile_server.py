"""Hostile requests over a real socket to a real `gremlin serve`: what only a real server shows."""

from __future__ import annotations

import pytest

from gremlin.store import Site

from .test_rawhttp import Conn, token_for

pytestmark = pytest.mark.slow
BODY_BYTES = 600 * 1024  # over what hypercorn queues for the app (about 10 reads of 64 KiB)


def test_a_request_refused_before_its_body_was_read_leaves_the_connection_usable(
    site: Site, server_factory
) -> None:  # type: ignore[no-untyped-def]
    """hypercorn stops reading a connection while the app leaves a body unread; the client's
    next request on that keep-alive connection then hung forever."""
    token = token_for(site, "ann")
    server = server_factory(site.root)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refusals = [  # each answered before any view reads the body
        ("PATCH", "/api/v1/media/x", {"Authorization": f"Bearer {token}"}, BODY_BYTES, 400),
        ("POST", "/no/such/path", {}, BODY_BYTES, 404),
        ("PUT", "/", {}, BODY_BYTES, 405),
        ("POST", "/collections", form, 3 * BODY_BYTES, 400),  # a form over 1 MiB
    ]
    for method, path, headers, size, status in refusals:
        conn = Conn(server.url)
        conn.sock.settimeout(20)
        try:
            answer = conn.request(method, path, headers, b"x" * size)
            assert answer[0] == status, (method, path, answer)
            assert conn.request("GET", "/healthz", {})[0] == 200, (method, path)
        finally:
            conn.close()
    assert server.stop() == 0

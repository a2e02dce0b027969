"""Upload requests whose bodies the server reads from the socket itself (gremlin.web.rawhttp),
over a real socket to a real `gremlin serve`: keep-alive across both paths, 100-continue,
refusals that the client can read, a client gone mid-body and the resume."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import sqlite3
from urllib.parse import urlsplit

import h11
import pytest

from gremlin.accounts import create_token, create_user
from gremlin.store import Site, connect, transaction
from gremlin.web.rawhttp import RAW_MIN_BYTES

from .helpers import jpeg_bytes, multipart

pytestmark = pytest.mark.slow
DEBUG = {"GREMLIN_LOG_LEVEL": "DEBUG"}


def token_for(site: Site, name: str) -> str:
    conn = connect(site.db)
    try:
        with transaction(conn):
            return create_token(conn, create_user(conn, name, None), "raw")
    finally:
        conn.close()


def media_rows(site: Site) -> list[sqlite3.Row]:
    conn = connect(site.db)
    try:
        return conn.execute(
            "SELECT m.title, f.sha256, f.size FROM media m JOIN files f ON f.media_id = m.id"
            " WHERE f.role = 'original'"
        ).fetchall()
    finally:
        conn.close()


def big_jpeg(size: int) -> bytes:
    head = jpeg_bytes((120, 80))
    return head + bytes(i % 253 for i in range(size - len(head)))


class Conn:
    """One HTTP/1.1 connection driven by h11's client side: what a keep-alive client does."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        self.h11 = h11.Connection(h11.CLIENT)

    def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        fields = [("Host", self.host), *headers.items()]
        self.sock.sendall(self.h11.send(h11.Request(method=method, target=path, headers=fields)))

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(self.h11.send(h11.Data(data=body)))
        self.sock.sendall(self.h11.send(h11.EndOfMessage()))

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(1 << 16))
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, headers, body

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        self.send_head(method, path, {**headers, "Content-Length": str(len(body))})
        self.send_body(body)
        answer = self.response()
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return answer

    def close(self) -> None:
        self.sock.close()


def test_tus_on_one_keep_alive_connection(site: Site, server_factory) -> None:  # type: ignore[no-untyped-def]
    token = token_for(site, "alice")
    server = server_factory(site.root, env=DEBUG)
    data = big_jpeg(RAW_MIN_BYTES * 3 + 7)
    tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    conn = Conn(server.url)
    try:
        name = "title " + base64.b64encode(b"Kept").decode()
        status, headers, _ = conn.request(
            "POST", "/api/v1/uploads", {**tus, "Upload-Length": str(len(data)),
                                        "Upload-Metadata": name},
        )  # fmt: skip
        assert status == 201
        path = urlsplit(headers["location"]).path
        half = len(data) // 2
        for start, end in ((0, half), (half, len(data))):  # two raw PATCHes in a row
            status, headers, _ = conn.request(
                "PATCH", path, {**tus, "Upload-Offset": str(start),
                                "Content-Type": "application/offset+octet-stream"},
                data[start:end],
            )  # fmt: skip
            assert status == 204, headers
            assert headers["upload-offset"] == str(end)
        status, headers, _ = conn.request("HEAD", path, tus)  # back on hypercorn's side
        assert status == 200 and headers["upload-offset"] == str(len(data))
        assert "gremlin-media-id" in headers
    finally:
        conn.close()
    assert [tuple(r) for r in media_rows(site)] == [
        ("Kept", hashlib.sha256(data).hexdigest(), len(data))
    ]
    assert server.log().count("raw request method=PATCH") == 2
    assert server.stop() == 0


def test_multipart_with_100_continue_and_fields_after_the_file(site: Site, server_factory) -> None:  # type: ignore[no-untyped-def]
    token = token_for(site, "bob")
    server = server_factory(site.root, env=DEBUG)
    data = big_jpeg(2 * 1024 * 1024 + 3)
    body, ctype = multipart({}, data)
    # move a field after the file part: the parser must read on past the file's boundary
    closing = body.rindex(b"--\r\n")
    boundary = ctype.split("boundary=")[1].encode()
    body = (
        body[: closing - len(boundary) - 2]
        + b'--%s\r\nContent-Disposition: form-data; name="title"\r\n\r\nAfter\r\n' % boundary
        + body[closing - len(boundary) - 2 :]
    )
    conn = Conn(server.url)
    try:
        conn.send_head(
            "POST", "/api/v1/media",
            {"Authorization": f"Bearer {token}", "Content-Type": ctype,
             "Content-Length": str(len(body)), "Expect": "100-continue"},
        )  # fmt: skip
        interim = conn.sock.recv(1024)  # nothing of the body is sent before the server asks
        assert interim.startswith(b"HTTP/1.1 100 ")
        conn.h11.receive_data(interim)
        conn.send_body(body)
        try:
            status, _, answer = conn.response()
        except TimeoutError:
            raise AssertionError(f"no response; the server's log:\n{server.log()}") from None
        assert status == 201, answer
    finally:
        conn.close()
    assert [tuple(r) for r in media_rows(site)] == [
        ("After", hashlib.sha256(data).hexdigest(), len(data))
    ]
    assert "raw request method=POST path=/api/v1/media" in server.log()
    assert server.stop() == 0


def test_a_refusal_is_read_by_the_client_and_the_server_serves_on(
    site: Site, server_factory
) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(site.root, env={**DEBUG, "GREMLIN_MAX_UPLOAD_BYTES": str(2**20)})
    body, ctype = multipart({}, big_jpeg(4 * 1024 * 1024))
    conn = Conn(server.url)
    try:  # no credentials: 401 without the body being stored anywhere
        conn.send_head("POST", "/api/v1/media", {"Content-Type": ctype,
                                                 "Content-Length": str(len(body))})  # fmt: skip
        conn.sock.sendall(body[: 1024 * 1024])
        status, headers, _ = conn.response()
        assert status == 401
        assert headers.get("connection") == "close"
    finally:
        conn.close()
    token = token_for(site, "carol")
    conn = Conn(server.url)
    try:  # over max_upload_bytes by its Content-Length: 413 before reading it
        conn.send_head("POST", "/api/v1/media", {"Content-Type": ctype,
                                                 "Authorization": f"Bearer {token}",
                                                 "Content-Length": str(len(body))})  # fmt: skip
        status, _, answer = conn.response()
        assert status == 413, answer
    finally:
        conn.close()
    conn = Conn(server.url)
    try:
        assert conn.request("GET", "/healthz", {})[0] == 200
    finally:
        conn.close()
    conn = Conn(server.url)
    try:  # a head with bare LF line breaks (h11 accepts them) still reaches hypercorn at once
        conn.sock.sendall(b"GET /healthz HTTP/1.1\nHost: x\n\n")
        assert conn.sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    finally:
        conn.close()
    assert os.listdir(site.incoming) == []
    assert media_rows(site) == []
    assert server.stop() == 0


def test_a_client_gone_mid_patch_resumes(site: Site, server_factory) -> None:  # type: ignore[no-untyped-def]
    token = token_for(site, "dave")
    server = server_factory(site.root, env=DEBUG)
    data = big_jpeg(3 * 1024 * 1024)
    tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    conn = Conn(server.url)
    try:
        status, headers, _ = conn.request(
            "POST", "/api/v1/uploads", {**tus, "Upload-Length": str(len(data))}
        )
        path = urlsplit(headers["location"]).path
        conn.send_head("PATCH", path, {**tus, "Upload-Offset": "0",
                                       "Content-Type": "application/offset+octet-stream",
                                       "Content-Length": str(len(data))})  # fmt: skip
        conn.sock.sendall(data[: 1024 * 1024 + 5])
    finally:
        conn.close()  # gone mid-body
    conn = Conn(server.url)
    try:
        for _ in range(100):  # the server notices the disconnect and keeps what arrived
            status, headers, _ = conn.request("HEAD", path, tus)
            offset = int(headers["upload-offset"])
            if offset == 1024 * 1024 + 5:
                break
        assert offset == 1024 * 1024 + 5
        status, headers, _ = conn.request(
            "PATCH", path, {**tus, "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream"},
            data[offset:],
        )  # fmt: skip
        assert status == 204 and "gremlin-media-id" in headers
    finally:
        conn.close()
    assert [(r["sha256"], r["size"]) for r in media_rows(site)] == [
        (hashlib.sha256(data).hexdigest(), len(data))
    ]
    assert server.stop() == 0

"""Upload requests served beside hypercorn, their bodies read straight from the socket.

hypercorn serves every request as before, except one kind: an HTTP/1.1 request with a
Content-Length of at least `RAW_MIN_BYTES` to a view that streams its body to disk
(`auth.streams_body`: the tus PATCH and the multipart upload). For those, `GremlinTCPServer`
(hypercorn's trio `TCPServer` with its read loop replaced) runs the same ASGI app itself,
with the socket in the scope (`bodies.RAW_KEY`) for `rawbody.RawBody` to read. Measured
(bench/bench_upload.py): hypercorn's path costs 4-8 s of CPU per GiB of body; this one the
cost of the copy and the hash.

The read loop only looks at a request's head when hypercorn's HTTP/1.1 connection is idle
(between requests, nothing buffered), so a connection can alternate between the two: keep-alive
works across them. Everything else, including a malformed head, goes to hypercorn unchanged.
A raw request's response is written by an `h11.Connection` of its own; if the app answered
without reading the whole body, the connection is closed after a bounded drain.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable
from math import inf
from typing import Any
from urllib.parse import unquote

import h11
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer

from .bodies import RAW_KEY, closing_headers
from .rawbody import ClientGone, RawBody

log = logging.getLogger(__name__)

RAW_MIN_BYTES = 256 * 1024  # smaller bodies are not worth leaving hypercorn's path
HEAD_LIMIT = 64 * 1024  # as hypercorn_config's h11_max_incomplete_size
RECV_BYTES = 2**16  # hypercorn's MAX_RECV
DRAIN_SECONDS = 2.0  # an unread body is read and dropped this long before closing
SETTLE_SECONDS = 1.0  # how long a request may wait for hypercorn to finish the previous one
BODY_METHODS = (b"POST ", b"PATCH ", b"PUT ")
HEAD_END = re.compile(rb"\n\r?\n")

RawRoute = Callable[[str, str], bool]  # (method, path) -> does the view stream its body?


class GremlinTCPServer(TCPServer):
    """hypercorn's connection handler, with upload requests taken aside (see module doc)."""

    def __init__(self, *args: Any, raw_route: RawRoute) -> None:
        super().__init__(*args)
        self._raw_route = raw_route

    async def _read_data(self) -> None:
        pending = b""  # a head being gathered while hypercorn's side is idle
        carry = b""  # bytes after a raw request's body: the next request's start
        while True:
            if carry:
                data, carry = carry, b""
            else:
                try:
                    with trio.fail_after(self.config.read_timeout or inf):
                        data = bytes(await self.stream.receive_some(RECV_BYTES))
                except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                    break
            if data and (pending or await self._settled()):
                pending += data
                if _may_be_upload(pending):  # anything else is hypercorn's at once
                    end = _head_end(pending)
                    if end < 0 and len(pending) < HEAD_LIMIT:
                        continue
                    found = _raw_request(pending[:end]) if end >= 0 else None
                    if found is not None and self._raw_route(*found.route):
                        head, rest, pending = pending[:end], pending[end:], b""
                        keep, carry = await self._serve_raw(head, found, rest)
                        if not keep:
                            break
                        continue
                data, pending = pending, b""
            elif not data and pending:
                await self.protocol.handle(RawData(pending))
                pending = b""
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())

    async def _settled(self) -> bool:
        """Is hypercorn's side idle, once it has finished the response it is sending? A
        keep-alive client sends its next request as soon as it has read the answer, often
        before hypercorn's task has wrapped up; hypercorn itself would hold those bytes until
        then. False (hand the bytes to hypercorn) if it is not between requests after all."""
        deadline = trio.current_time() + SETTLE_SECONDS
        while not self._idle():
            protocol = getattr(self.protocol, "protocol", None)
            conn = getattr(protocol, "connection", None)
            finishing = (
                type(conn) is h11.Connection
                and conn.their_state is h11.DONE
                and conn.our_state in (h11.SEND_RESPONSE, h11.SEND_BODY, h11.DONE)
            )
            if not finishing or trio.current_time() > deadline:
                return False
            await trio.sleep(0.001)
        return True

    def _idle(self) -> bool:
        """Is hypercorn's HTTP/1.1 side between requests with nothing buffered?"""
        protocol = getattr(self.protocol, "protocol", None)
        if not isinstance(protocol, H11Protocol) or protocol.stream is not None:
            return False
        conn = protocol.connection
        return (
            type(conn) is h11.Connection
            and conn.our_state is h11.IDLE
            and conn.their_state is h11.IDLE
            and not conn.trailing_data[0]
        )

    async def _serve_raw(self, head: bytes, found: _Found, rest: bytes) -> tuple[bool, bytes]:
        """Run the app for one raw request; returns (keep the connection?, bytes after it)."""
        log.debug("raw request method=%s path=%s length=%d", *found.route, found.length)
        await self.idle_task.stop()  # hypercorn would close an "idle" connection mid-upload
        await self.context.mark_request()
        sock = socket.socket(fileno=os.dup(self.stream.socket.fileno()))
        try:
            exchange = _Exchange(self, found, head)
            raw = RawBody(sock, rest, found.length, exchange.send_continue)
            try:
                await exchange.run(self.app, raw)
            except ClientGone:
                return False, b""
            keep = exchange.keep_alive() and raw.complete
            if not raw.complete and exchange.responded:
                await self._drain(raw)
        finally:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        if keep and not self.context.terminated.is_set():
            await self.idle_task.restart(self._task_group, self._idle_timeout)
            return True, rest[found.length :]
        return False, b""

    async def _drain(self, raw: RawBody) -> None:
        """Read and drop what is left of a body the app did not want, so that the client
        reads our answer instead of a reset; bounded in time."""
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        with trio.move_on_after(DRAIN_SECONDS):
            try:
                async for _ in raw.chunks():
                    pass
            except ClientGone:
                pass


class _Found:
    """A request head that may go the raw way."""

    def __init__(self, conn: h11.Connection, request: h11.Request, length: int) -> None:
        self.conn, self.request, self.length = conn, request, length
        target = request.target.decode("latin-1")
        self.path, _, query = target.partition("?")
        self.query = query.encode("latin-1")
        self.route = (request.method.decode("ascii").upper(), unquote(self.path))


def _may_be_upload(data: bytes) -> bool:
    """Could `data` be the start of a POST/PATCH/PUT request?"""
    return any(data.startswith(m) or m.startswith(data) for m in BODY_METHODS)


def _head_end(data: bytes) -> int:
    """Where the request head in `data` ends (after its blank line, CRLF or bare LF as h11
    accepts), or -1."""
    match = HEAD_END.search(data)
    return match.end() if match else -1


def _raw_request(head: bytes) -> _Found | None:
    """An HTTP/1.1 upload request with a large Content-Length; None for anything else."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None  # hypercorn answers it
    if not isinstance(event, h11.Request) or event.http_version != b"1.1":
        return None
    headers = {name: value for name, value in event.headers}
    if b"transfer-encoding" in headers or b"upgrade" in headers:
        return None
    length = headers.get(b"content-length", b"")
    if not length.isdigit() or int(length) < RAW_MIN_BYTES:
        return None
    return _Found(conn, event, int(length))


class _Exchange:
    """One raw request's ASGI run and its response, written through its own h11 state."""

    def __init__(self, server: GremlinTCPServer, found: _Found, head: bytes) -> None:
        self.server = server
        self.found = found
        self.conn = found.conn
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.responded = False  # the whole response has been sent
        self.raw: RawBody | None = None
        self.close = any(
            name == b"connection" and b"close" in value.lower()
            for name, value in found.request.headers
        )

    def scope(self, raw: RawBody) -> dict[str, Any]:
        request, server = self.found.request, self.server
        protocol = server.protocol  # hypercorn read the addresses when it accepted
        return {
            "type": "http",
            "http_version": "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": self.found.route[0],
            "scheme": "http",
            "path": self.found.route[1],
            "raw_path": self.found.path.encode("latin-1"),
            "query_string": self.found.query,
            "root_path": server.config.root_path,
            "headers": list(request.headers),
            "client": getattr(protocol, "client", None),
            "server": getattr(protocol, "server", None),
            "state": server.state.copy(),
            "extensions": {},
            RAW_KEY: raw,
        }

    async def run(self, app: Any, raw: RawBody) -> None:
        self.raw = raw

        async def receive() -> dict[str, Any]:
            await trio.sleep_forever()  # the view reads RAW_KEY (bodies.body_reader)
            raise AssertionError  # pragma: no cover

        try:
            await app(
                self.scope(raw), receive, self.send, trio.to_thread.run_sync, trio.from_thread.run
            )
        except Exception as e:
            gone = _client_gone(e)
            if gone is not None:
                raise gone from None
            log.exception("error in the app serving a raw upload request")
        if not self.responded and self.status is None:
            self.close = True
            self.status, self.headers = 500, [(b"content-length", b"0")]
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send_continue(self) -> None:
        if self.conn.they_are_waiting_for_100_continue:
            interim = h11.InformationalResponse(status_code=100, headers=[])
            await self._write(self.conn.send(interim))

    async def send(self, message: dict[str, Any] | None) -> None:
        if message is None or self.responded:
            return
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            return
        if message["type"] != "http.response.body" or self.status is None:
            return
        data = b""
        if self.conn.our_state is h11.SEND_RESPONSE:
            headers = [*self.headers, *self.server.config.response_headers("h11")]
            unread = self.raw is not None and not self.raw.complete
            if self.close or unread or self.server.context.terminated.is_set():
                headers = closing_headers(headers)
            self.close = self.close or any(
                k.lower() == b"connection" and b"close" in v.lower() for k, v in headers
            )
            data += self.conn.send(h11.Response(status_code=self.status, headers=headers))
        body = bytes(message.get("body", b""))
        if body:
            data += self.conn.send(h11.Data(data=body))
        if not message.get("more_body", False):
            data += self.conn.send(h11.EndOfMessage())
            self.responded = True
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        try:
            async with self.server.send_lock:
                with trio.CancelScope(shield=True):
                    await self.server.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise ClientGone("the client went away before the response") from e

    def keep_alive(self) -> bool:
        return self.responded and not self.close


def _client_gone(e: BaseException) -> ClientGone | None:
    """The ClientGone in `e`, also when Quart's nursery wrapped it in a group."""
    if isinstance(e, ClientGone):
        return e
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            if (gone := _client_gone(inner)) is not None:
                return gone
    return None

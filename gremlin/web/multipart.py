"""A streamed multipart/form-data upload: small fields in memory, the one file part to disk.

The parsing is werkzeug's sans-IO `MultipartDecoder` (already installed as Quart's dependency,
maintained by Pallets, and it hands out file data as it arrives); this module drives it from
our raw ASGI stream and writes the `file` part with `bodies.write_stream`, so memory stays
bounded whatever the upload's size. A body that `rawhttp` reads from the socket has its file
part copied past the decoder (`_Parts.file_to`): werkzeug's decoder costs ~1.4 s of CPU per
GiB of file data, the boundary search of `RawBody.copy_until` a small part of that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    Preamble,
)

from ..errors import BadRequest
from . import auth
from .bodies import AnyBodyReader, RawBodyReader, fsync_fd, new_digest, too_large, write_stream

FEED_BYTES = 64 * 1024  # the decoder's buffer limit applies per feed
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 32
FILE_FIELD = "file"


@dataclasses.dataclass
class FormUpload:
    fields: dict[str, str]
    filename: str = ""
    staged: Path | None = None
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.unlink(missing_ok=True)


def boundary_of(content_type: str | None) -> bytes:
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise BadRequest(
            "send the upload as multipart/form-data with a `file` field",
            hint="curl -F file=@photo.jpg -H 'Authorization: Bearer TOKEN' URL",
        )
    return boundary.encode("latin-1")


class _Parts:
    """The events of one multipart body, fed to the decoder a slice at a time.

    For a body `rawhttp` reads from the socket, the file part's bytes skip the decoder: what
    it holds after the part's headers (its `buffer`) and the socket go to the file up to the
    boundary (`RawBody.copy_until`), and a fresh decoder reads on from the boundary."""

    def __init__(self, reader: AnyBodyReader, boundary: bytes) -> None:
        self.reader = reader
        self.boundary = boundary
        self.decoder = self._decoder()
        self.chunks = reader.chunks()
        self.pending = memoryview(b"")
        self.ended = False
        self.after_file = False  # a fresh decoder reads on after a raw file part

    def _decoder(self) -> MultipartDecoder:
        return MultipartDecoder(
            self.boundary, max_form_memory_size=FEED_BYTES * 4, max_parts=MAX_PARTS
        )

    async def next(self) -> Any:
        """The next event; None after the epilogue."""
        try:
            while (event := self.decoder.next_event()) is NEED_DATA:
                if self.pending:
                    self.decoder.receive_data(self.pending[:FEED_BYTES])  # type: ignore[arg-type]
                    self.pending = self.pending[FEED_BYTES:]
                elif self.ended:
                    return None
                elif (chunk := await anext(self.chunks, None)) is None:
                    self.decoder.receive_data(None)
                    self.ended = True
                else:
                    self.pending = memoryview(chunk)
        except RequestEntityTooLarge as e:
            raise BadRequest("a form part's headers or preamble are too large") from e
        except ValueError as e:
            raise BadRequest(f"the multipart body is malformed: {e}") from e
        if isinstance(event, Preamble) and event.data and self.after_file:
            raise BadRequest("the multipart body has data between the file and its boundary")
        return None if isinstance(event, Epilogue) else event

    async def file_to(self, fd: int, digest: Any, limit: int, path: Path) -> int | None:
        """The current file part's data straight into `fd`, for a raw body (None otherwise)."""
        if not isinstance(self.reader, RawBodyReader):
            return None
        data = bytes(self.decoder.buffer) + bytes(self.pending)
        # The decoder leaves the line break that ends the part's headers (CRLF, CR or LF).
        data = data[2:] if data.startswith(b"\r\n") else data[1:]
        written, rest = await self.reader.copy_until(
            fd, data, b"\n--" + self.boundary, digest=digest, limit=limit, path=path
        )
        self.decoder = self._decoder()  # reads on from the boundary
        self.after_file = True
        self.pending = memoryview(rest)
        return written

    async def aclose(self) -> None:
        await self.chunks.aclose()


async def parse_form_upload(
    reader: AnyBodyReader, content_type: str | None, incoming: Path, *, max_file_bytes: int
) -> FormUpload:
    """Read the whole form; the `file` part lands fsynced in `incoming`. On any error the
    partial file is removed."""
    parts = _Parts(reader, boundary_of(content_type))
    upload = FormUpload(fields={})
    try:
        while (event := await parts.next()) is not None:
            if isinstance(event, Field):
                value = await _read_field(parts, event.name)
                if event.name == auth.CSRF_FIELD and auth.csrf_pending():
                    auth.accept_csrf_field(value)
                upload.fields[event.name] = value
            elif isinstance(event, File):
                if event.name != FILE_FIELD or upload.staged is not None:
                    raise BadRequest(f"unexpected file field {event.name!r}: send one `file`")
                if auth.csrf_pending():
                    auth.accept_csrf_field(upload.fields.get(auth.CSRF_FIELD, ""))
                upload.filename = event.filename
                await _receive_file(parts, upload, incoming, max_file_bytes)
    except BaseException:
        upload.discard()
        raise
    finally:
        await parts.aclose()
    return upload


async def _read_field(parts: _Parts, name: str) -> str:
    value = bytearray()
    while True:
        event = await parts.next()
        if not isinstance(event, Data):
            raise BadRequest(f"form field {name!r} ended unexpectedly")
        value += event.data
        if len(value) > MAX_FIELD_BYTES:
            raise BadRequest(f"form field {name!r} is longer than {MAX_FIELD_BYTES} bytes")
        if not event.more_data:
            break
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"form field {name!r} is not UTF-8") from e


async def _receive_file(
    parts: _Parts, upload: FormUpload, incoming: Path, max_file_bytes: int
) -> None:
    upload.staged = incoming / f"form-{secrets.token_hex(12)}.part"
    digest = new_digest()

    async def file_data() -> AsyncGenerator[bytes, None]:
        size = 0
        while True:
            event = await parts.next()
            if not isinstance(event, Data):
                raise BadRequest("the file part ended unexpectedly")
            size += len(event.data)
            if size > max_file_bytes:
                raise too_large(max_file_bytes)
            if event.data:
                yield event.data
            if not event.more_data:
                return

    fd = os.open(upload.staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        size = await parts.file_to(fd, digest, max_file_bytes, upload.staged)
        if size is None:
            async with contextlib.aclosing(file_data()) as data:
                size = await write_stream(data, fd, digest=digest, path=upload.staged)
        upload.size = size
        await fsync_fd(fd, upload.staged)
    finally:
        os.close(fd)
    upload.sha256 = digest.hexdigest()

"""A streamed multipart/form-data upload: small fields in memory, the one file part to disk.

The parsing is werkzeug's sans-IO `MultipartDecoder` (already installed as Quart's dependency,
maintained by Pallets, and it hands out file data as it arrives); this module drives it from
our raw ASGI stream and writes the `file` part with `bodies.write_stream`, so memory stays
bounded whatever the upload's size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder

from ..errors import BadRequest
from . import auth
from .bodies import BodyReader, fsync_fd, new_digest, too_large, write_stream

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


async def _events(reader: BodyReader, decoder: MultipartDecoder) -> AsyncGenerator[Any, None]:
    try:
        async with contextlib.aclosing(reader.chunks()) as chunks:
            async for chunk in chunks:
                view = memoryview(chunk)
                for start in range(0, len(view), FEED_BYTES):
                    decoder.receive_data(view[start : start + FEED_BYTES])  # type: ignore[arg-type]
                    while (event := decoder.next_event()) is not NEED_DATA:
                        yield event
        decoder.receive_data(None)
        while (event := decoder.next_event()) is not NEED_DATA:
            yield event
            if isinstance(event, Epilogue):
                return
    except RequestEntityTooLarge as e:
        raise BadRequest("a form part's headers or preamble are too large") from e
    except ValueError as e:
        raise BadRequest(f"the multipart body is malformed: {e}") from e


async def parse_form_upload(
    reader: BodyReader, content_type: str | None, incoming: Path, *, max_file_bytes: int
) -> FormUpload:
    """Read the whole form; the `file` part lands fsynced in `incoming`. On any error the
    partial file is removed."""
    decoder = MultipartDecoder(
        boundary_of(content_type), max_form_memory_size=FEED_BYTES * 4, max_parts=MAX_PARTS
    )
    upload = FormUpload(fields={})
    try:
        async with contextlib.aclosing(_events(reader, decoder)) as events:
            async for event in events:
                if isinstance(event, Field):
                    value = await _read_field(events, event.name)
                    if event.name == auth.CSRF_FIELD and auth.csrf_pending():
                        auth.accept_csrf_field(value)
                    upload.fields[event.name] = value
                elif isinstance(event, File):
                    if event.name != FILE_FIELD or upload.staged is not None:
                        raise BadRequest(f"unexpected file field {event.name!r}: send one `file`")
                    if auth.csrf_pending():
                        auth.accept_csrf_field(upload.fields.get(auth.CSRF_FIELD, ""))
                    upload.filename = event.filename
                    await _receive_file(events, upload, incoming, max_file_bytes)
    except BaseException:
        upload.discard()
        raise
    return upload


async def _read_field(events: AsyncIterator[Any], name: str) -> str:
    value = bytearray()
    async for event in events:
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
    events: AsyncIterator[Any], upload: FormUpload, incoming: Path, max_file_bytes: int
) -> None:
    upload.staged = incoming / f"form-{secrets.token_hex(12)}.part"
    digest = new_digest()

    async def file_data() -> AsyncGenerator[bytes, None]:
        size = 0
        async for event in events:
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
        async with contextlib.aclosing(file_data()) as data:
            upload.size = await write_stream(data, fd, digest=digest, path=upload.staged)
        await fsync_fd(fd, upload.staged)
    finally:
        os.close(fd)
    upload.sha256 = digest.hexdigest()

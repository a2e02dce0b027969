"""tus 1.0.0 (core, creation, termination): the header rules and an upload's on-disk state.

An unfinished upload is two files in content/incoming/, never a database row, so it survives
a crash, a restart and an upgrade:

    <upload-id>.bin    the bytes received so far; its size IS the upload's offset
    <upload-id>.json   {"id", "owner_id", "length", "metadata", "created", and once
                        committed: "media_id"}

The commit transaction itself also records `tus_upload:<upload-id>` -> media id in `meta`
(through commit_upload's `on_commit`), so a crash between that transaction and the JSON's
update is settled by looking it up: never a second commit.

The JSON is replaced atomically (write, fsync, rename, fsync dir). Everything here is plain
sync code; the views in gremlin.web.uploads run it in worker threads.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BadRequest, GremlinError, NotFound
from ..store import fsync_dir, write_atomic

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_METADATA_CHARS = 16 * 1024


class WrongTusVersion(GremlinError):
    status = 412
    code = "tus_version"

    def __init__(self, got: str | None) -> None:
        super().__init__(
            f"Tus-Resumable must be {TUS_VERSION} (got {got or 'nothing'})",
            hint="Use a tus 1.0.0 client (tus-js-client, Uppy, tuspy).",
        )


def check_resumable(value: str | None) -> None:
    if value != TUS_VERSION:
        raise WrongTusVersion(value)


def parse_length(value: str | None, header: str) -> int:
    if value is None or not value.isdigit():
        raise BadRequest(f"{header} must be a non-negative whole number (got {value!r})")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str]:
    """`key base64value,key2 ...` -> {key: text}. Values must be UTF-8."""
    if not value:
        return {}
    if len(value) > MAX_METADATA_CHARS:
        raise BadRequest("Upload-Metadata is too long")
    result: dict[str, str] = {}
    for pair in value.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not key or key in result or " " in encoded.strip():
            raise BadRequest(f"Upload-Metadata pair {pair.strip()!r} is malformed")
        try:
            result[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8") from e
    return result


def new_upload_id() -> str:
    return secrets.token_hex(16)


@dataclasses.dataclass
class UploadState:
    id: str
    owner_id: int
    length: int
    metadata: dict[str, str]
    created: float
    media_id: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()


@dataclasses.dataclass(frozen=True)
class Paths:
    incoming: Path
    id: str

    @property
    def bin(self) -> Path:
        return self.incoming / f"{self.id}.bin"

    @property
    def json(self) -> Path:
        return self.incoming / f"{self.id}.json"

    @property
    def staged(self) -> Path:
        """A hard link of the bytes handed to the commit (which moves it into queue/)."""
        return self.incoming / f"{self.id}.commit"


def paths(incoming: Path, upload_id: str) -> Paths:
    if not UPLOAD_ID_RE.match(upload_id):
        raise NotFound("no such upload")
    return Paths(incoming, upload_id)


def create(incoming: Path, state: UploadState) -> None:
    """The empty .bin first, then the .json that makes the upload exist."""
    p = paths(incoming, state.id)
    with open(p.bin, "xb") as f:
        os.fsync(f.fileno())
    save(incoming, state)


def save(incoming: Path, state: UploadState) -> None:
    write_atomic(paths(incoming, state.id).json, [state.to_json()])


def load(incoming: Path, upload_id: str, owner_id: int | None) -> UploadState:
    """The upload, if it exists and belongs to `owner_id` (None: any owner). Else 404."""
    p = paths(incoming, upload_id)
    try:
        data: dict[str, Any] = json.loads(p.json.read_bytes())
        state = UploadState(**data)
    except (FileNotFoundError, ValueError, TypeError):
        raise NotFound("no such upload (finished long ago, terminated, or never made)") from None
    if owner_id is not None and state.owner_id != owner_id:
        raise NotFound("no such upload (finished long ago, terminated, or never made)")
    return state


def offset_on_disk(incoming: Path, upload_id: str) -> int:
    try:
        return paths(incoming, upload_id).bin.stat().st_size
    except FileNotFoundError:
        return 0


def _commit_key(upload_id: str) -> str:
    return f"tus_upload:{upload_id}"


def record_commit(upload_id: str) -> Callable[[sqlite3.Connection, str], None]:
    """For commit_upload's `on_commit`: note upload -> media inside the commit transaction."""

    def record(conn: sqlite3.Connection, media_id: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (_commit_key(upload_id), media_id)
        )

    return record


def find_committed(conn: sqlite3.Connection, upload_id: str) -> str | None:
    """The media a crashed commit of this upload made, if its transaction did commit."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_commit_key(upload_id),)).fetchone()
    return None if row is None else str(row[0])


def forget_commit(conn: sqlite3.Connection, upload_id: str) -> None:
    """Once the upload's JSON holds the media id, the database need not remember it."""
    conn.execute("DELETE FROM meta WHERE key = ?", (_commit_key(upload_id),))


def truncate_to(incoming: Path, upload_id: str, size: int) -> None:
    """Make the upload incomplete again (the client re-sends the tail, which commits)."""
    p = paths(incoming, upload_id)
    with open(p.bin, "r+b") as f:
        f.truncate(size)
        os.fsync(f.fileno())


def remove(incoming: Path, upload_id: str, *, keep_json: bool = False) -> None:
    p = paths(incoming, upload_id)
    for path in (p.bin, p.staged) if keep_json else (p.bin, p.staged, p.json):
        path.unlink(missing_ok=True)
    fsync_dir(incoming)


def link_for_commit(incoming: Path, upload_id: str) -> Path:
    p = paths(incoming, upload_id)
    p.staged.unlink(missing_ok=True)
    os.link(p.bin, p.staged)
    return p.staged

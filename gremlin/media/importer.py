"""`gremlin import`: files from the local disk committed exactly like uploads.

Each file is copied into content/incoming/ (hashed while copied, fsynced), then committed by
`commit_upload`: media row, files row and jobs in one transaction per file. It works whether
or not a server runs: a running server's job supervisor notices the new queued jobs. While a
live server is in maintenance (an upgrade copying the database), imports are refused.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import trio

from ..accounts import user_by_name
from ..errors import DiskFull, GremlinError, Maintenance, Unprocessable
from ..settings import Settings
from ..store import Site, Store, fsync_dir, open_store
from ..store.server_record import live_server
from .base import MediaType
from .commit import commit_upload
from .registry import HEAD_BYTES, load_media_types, sniff

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Imported:
    path: str  # as found from the command line's arguments
    media_id: str


@dataclasses.dataclass(frozen=True)
class Refused:
    path: str
    reason: str


Outcome = Imported | Refused


LINK_INSIDE = "a symbolic link inside a directory (not followed; name it to import its target)"


def expand(paths: Iterable[str]) -> Iterator[tuple[str, Path | None, str]]:
    """(shown path, file, "") for each file; directories recursed in name order, skipping
    hidden entries inside them; (shown path, None, reason) for what is not a readable file.

    A path named on the command line is followed if it is a symbolic link (to a file, or to a
    directory to recurse). Inside recursed directories links are never followed, to files or
    directories: no loops, nothing outside the tree, no file imported twice through a link;
    each one found is refused with LINK_INSIDE."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, dirs, files in os.walk(path):  # followlinks=False: never a loop
                links = [d for d in dirs if (Path(root) / d).is_symlink()]
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
                for name in sorted([*files, *links]):
                    if not name.startswith("."):
                        full = Path(root) / name
                        yield str(full), *_inside(full)
        elif path.is_file():
            yield given, path, ""
        elif path.exists() or path.is_symlink():
            yield given, None, "not a regular file"
        else:
            yield given, None, "no such file"


def _inside(full: Path) -> tuple[Path | None, str]:
    if full.is_symlink():
        return None, LINK_INSIDE
    if not full.is_file():  # a FIFO or a socket: opening one could block forever
        return None, "not a regular file"
    return full, ""


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown_path(path: str) -> str:
    """A path printable on one line, unambiguously (like `ls -b`): backslash, control and other
    unprintable characters as C escapes (`\\n`, `\\x1b`, `\\u202e`); a byte that was not
    UTF-8 (a surrogate escape) as `\\xNN`. Other characters, spaces included, as they are."""
    out = []
    for c in path:
        code = ord(c)
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif c.isprintable():
            out.append(c)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def refuse_in_maintenance(conn: sqlite3.Connection) -> None:
    server = live_server(conn)
    if server is not None and server.mode != "normal":
        raise Maintenance(f"the server (pid {server.process.pid}) is in {server.mode}")


def copy_to_incoming(source: Path, incoming: Path) -> tuple[Path, int, str]:
    """Copy `source` to a new file in incoming/, hashing as it goes; fsync it and the directory.
    Returns (staged path, size, sha256)."""
    staged = incoming / f"import-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as src, open(staged, "xb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        fsync_dir(incoming)
    except BaseException as e:
        staged.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(incoming), hint=DiskFull.UPLOAD_HINT) from e
        raise
    return staged, size, digest.hexdigest()


def precheck(source: Path, types: Mapping[str, MediaType]) -> None:
    """Refuse empty and unsupported files before copying them."""
    with open(source, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        raise Unprocessable("the file is empty (zero bytes)")
    sniff(head, types)


async def import_one(
    store: Store,
    settings: Settings,
    owner_id: int,
    source: Path,
    types: Mapping[str, MediaType],
) -> str:
    await trio.to_thread.run_sync(precheck, source, types)
    incoming = Site(settings.site).incoming
    staged, size, digest = await trio.to_thread.run_sync(copy_to_incoming, source, incoming)
    try:
        committed = await commit_upload(
            store,
            settings,
            owner_id=owner_id,
            staged=staged,
            original_name=source.name,
            size=size,
            sha256=digest,
            types=types,
            guard=refuse_in_maintenance,
        )
    finally:
        staged.unlink(missing_ok=True)  # moved on success; ours to remove on refusal
    return committed.media_id


async def run_import(
    settings: Settings,
    user: str,
    paths: Sequence[str],
    on_outcome: Callable[[Outcome, int, int], None] = lambda *_: None,
) -> list[Outcome]:
    """Import every file under `paths` for `user`; `on_outcome(outcome, done, total)` after
    each. A refused file does not stop the others."""
    types = load_media_types(settings)
    found = list(expand(paths))
    outcomes: list[Outcome] = []
    async with open_store(settings.db_path) as store:
        owner_id = int((await store.read(user_by_name, user))["id"])
        for shown, source, problem in found:
            outcome: Outcome
            if source is None:
                outcome = Refused(shown, problem)
            else:
                try:
                    outcome = Imported(
                        shown, await import_one(store, settings, owner_id, source, types)
                    )
                except GremlinError as e:
                    outcome = Refused(shown, f"{e.message} ({e.hint})" if e.hint else e.message)
                except OSError as e:
                    outcome = Refused(shown, f"cannot read it: {e.strerror or e}")
            if isinstance(outcome, Refused):
                log.debug("import refused: path=%s reason=%s", outcome.path, outcome.reason)
            outcomes.append(outcome)
            on_outcome(outcome, len(outcomes), len(found))
    return outcomes

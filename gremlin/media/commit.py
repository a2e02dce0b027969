"""The commit of a finished upload (invariant 2 of DESIGN.md), shared by tus, multipart, the
JSON API and `gremlin import`.

`staged` is a complete, fsynced file on the site's filesystem (content/incoming/...). The
commit sniffs it by content, checks the owner's quota, moves it to
content/queue/<media-id>/original.<ext> and then, in ONE write transaction, inserts the media
row, its files row (size, SHA-256, MIME) and its planned jobs. Only after that may the caller
acknowledge the upload. If the transaction fails, the file goes back to `staged`, so nothing
under queue/ is left without a row. If the process dies between the move and the commit (a
SIGKILL, a power cut), the file is in queue/ with no row: every commit holds a shared flock on
content/queue/ from before the move until after the commit, so whoever holds the exclusive lock
knows that a queue/<id>/ without a media row is an aborted commit, never one in progress.
`sweep_aborted_commits` (the GC's first step, at every server start) returns those to
content/incoming/ as the unacknowledged partial uploads they are. On any refusal the staged
file is left where it was: the caller removes it (or keeps it, e.g. a tus upload the client
may still delete).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import functools
import logging
import mimetypes
import os
import re
import secrets
import sqlite3
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import trio

from ..errors import BadRequest, GremlinError, NotFound, TooLarge, Unprocessable
from ..settings import Settings
from ..store import COMMITTING, Store, move_durable, sha256_file
from ..store.jobs import insert_planned_jobs
from ..units import human_size
from .base import Kind, MediaType, PlannedJob
from .registry import HEAD_BYTES, installed_media_types, sniff

log = logging.getLogger(__name__)

VISIBILITIES = ("public", "unlisted", "private")
MAX_TAGS = 50
MAX_TAG_CHARS = 64
MAX_TITLE_CHARS = 200
MAX_NAME_CHARS = 255
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/tiff": "tif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "video/x-flv": "flv",
    "video/mpeg": "mpg",
    "video/mp2t": "ts",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/aiff": "aiff",
    "audio/x-caf": "caf",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
}


@dataclasses.dataclass(frozen=True)
class Committed:
    media_id: str
    kind: Kind
    state: str  # "processing": the media becomes visible when its blocking jobs are done


@dataclasses.dataclass(frozen=True)
class NewMedia:
    """Everything the commit transaction writes for one upload."""

    id: str
    owner_id: int
    kind: Kind
    mime: str
    path: str  # relative to content/: queue/<id>/original.<ext>
    size: int
    sha256: str
    original_name: str
    title: str
    description: str
    tags: tuple[str, ...]
    visibility: str
    license: str


def new_media_id() -> str:
    """120 random bits, lowercase base32: unguessable, URL- and shell-safe, never starts '-'."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()


def extension_for(mime: str) -> str:
    if mime in EXTENSIONS:
        return EXTENSIONS[mime]
    if guessed := mimetypes.guess_extension(mime, strict=False):
        return guessed.lstrip(".")
    sub = mime.partition("/")[2].split(";")[0].split("+")[0]
    return re.sub(r"[^a-z0-9]", "", sub.lower())[:8] or "bin"


# Bytes a client must escape in a quoted header value, or that a person never types: an
# escape of one of these means the name really was percent-encoded (RFC 7578 4.2).
_TELLING_ESCAPE = re.compile(r"%(?:[01][0-9a-f]|7f|22|5c|[89a-f][0-9a-f])", re.IGNORECASE)
_ANY_PERCENT = re.compile(r"%(?![0-9a-f]{2})", re.IGNORECASE)
_PATH_ROOT = re.compile(r"^(?:[/\\]|~/|\.\.?[/\\]|[a-z]:[/\\])", re.IGNORECASE)
_NOT_IN_DIRECTORY_NAMES = set('<>"|?*')


def client_file_name(raw: str) -> str:
    """A file name as an upload client sent it (multipart `filename`, tus `filename`) ->
    the name it meant, percent-decoded only when the client clearly encoded it.

    Browsers escape `"`, CR and LF as %22, %0D, %0A, and RFC 7578 lets clients percent-encode
    any byte; but `50%25 off.jpg` may be a file's real name. So decode only when every `%`
    starts an escape, at least one escape is of a control character, `"`, `\\` or a non-ASCII
    byte (never typed as such by a person), and the result is UTF-8. Otherwise verbatim."""
    if not _TELLING_ESCAPE.search(raw) or _ANY_PERCENT.search(raw):
        return raw
    try:
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _last_path_part(name: str) -> str:
    """Its last path part when `name` looks like a path (a client that sent its directory
    too), else the whole name with any slashes made `_` (`x</b>.jpg` is no path)."""
    parts = re.split(r"[/\\]", name)
    if len(parts) == 1:
        return name
    directories = "".join(parts[:-1])
    if _PATH_ROOT.match(name) or not _NOT_IN_DIRECTORY_NAMES & set(directories):
        return parts[-1]
    return "_".join(parts)


def display_name(name: str) -> str:
    """A client's file name made safe to show: its last path part, no control or format
    characters (bidi overrides, line breaks, NUL), never only dots."""
    name = unicodedata.normalize("NFC", name or "")
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = " ".join(_last_path_part(name).split())
    if not name.strip("."):
        return "upload"
    return name[:MAX_NAME_CHARS]


def default_title(original_name: str) -> str:
    """A title from a file name: the display name's stem, `_` as spaces, no edge dots."""
    name = display_name(original_name)
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    title = re.sub(r"[_\s]+", " ", stem).strip(" .")
    return title[:MAX_TITLE_CHARS] or "upload"


def normalise_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Lowercase, trimmed, inner whitespace collapsed, deduplicated in order, bounded. A tag is
    a path part of its page's link (/tag/<tag>): '/' and '\\' become '-', and a tag of only
    dots (a browser turns /tag/.. into /) is dropped."""
    if isinstance(tags, str):
        tags = tags.split(",")
    seen: dict[str, None] = {}
    for tag in tags:
        clean = unicodedata.normalize("NFKC", str(tag)).lower()
        clean = clean.replace("/", "-").replace("\\", "-")
        clean = "".join(c for c in " ".join(clean.split()) if unicodedata.category(c)[0] != "C")
        clean = clean[:MAX_TAG_CHARS].strip()
        if clean.strip("."):
            seen.setdefault(clean, None)
    return tuple(seen)[:MAX_TAGS]


def slugify(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def quota_for(conn: sqlite3.Connection, owner_id: int, default_bytes: int) -> tuple[int, int]:
    """(quota in bytes, 0 = unlimited; bytes the user stores now)."""
    row = conn.execute("SELECT quota_bytes FROM users WHERE id = ?", (owner_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {owner_id}")
    quota = row["quota_bytes"] if row["quota_bytes"] is not None else default_bytes
    used = conn.execute(
        "SELECT coalesce(sum(files.size), 0) FROM files JOIN media ON media.id = files.media_id"
        " WHERE media.owner_id = ?",
        (owner_id,),
    ).fetchone()[0]
    return int(quota), int(used)


def check_quota(conn: sqlite3.Connection, owner_id: int, size: int, default_bytes: int) -> None:
    quota, used = quota_for(conn, owner_id, default_bytes)
    if quota and used + size > quota:
        raise TooLarge(
            f"this upload ({human_size(size)}) would exceed the storage quota:"
            f" {human_size(used)} of {human_size(quota)} used",
            hint="Delete some media, or ask an administrator for a larger quota.",
        )


def insert_media(
    conn: sqlite3.Connection,
    media: NewMedia,
    planned: list[PlannedJob],
    *,
    max_attempts: int,
    default_quota_bytes: int,
    guard: Callable[[sqlite3.Connection], None] | None = None,
    on_commit: Callable[[sqlite3.Connection, str], None] | None = None,
) -> list[int]:
    """The commit transaction's body (the caller holds BEGIN IMMEDIATE): quota, media row,
    files row, tags, planned jobs. Returns the job ids."""
    if guard is not None:
        guard(conn)
    check_quota(conn, media.owner_id, media.size, default_quota_bytes)
    now = time.time()
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, title, slug, description, visibility,"
        " license, original_name, created_at, updated_at)"
        " VALUES (?, ?, ?, 'processing', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            media.id,
            media.owner_id,
            media.kind.value,
            media.title,
            slugify(media.title),
            media.description,
            media.visibility,
            media.license,
            media.original_name,
            now,
            now,
        ),
    )
    conn.execute(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
        " VALUES (?, 'original', ?, ?, ?, ?, ?)",
        (media.id, media.path, media.mime, media.size, media.sha256, now),
    )
    conn.executemany(
        "INSERT INTO tags (media_id, tag) VALUES (?, ?)", [(media.id, t) for t in media.tags]
    )
    job_ids = insert_planned_jobs(conn, media.id, planned, max_attempts=max_attempts)
    if on_commit is not None:
        on_commit(conn, media.id)
    return job_ids


def _inspect(staged: Path, size: int | None, sha256: str | None) -> tuple[bytes, int, str]:
    """(head, size, sha256) of the staged file; size/sha256 given by the caller are trusted
    only after the size matches the file."""
    with open(staged, "rb") as f:
        head = f.read(HEAD_BYTES)
    actual = staged.stat().st_size
    if size is not None and size != actual:
        raise Unprocessable(f"upload incomplete: {actual} of {size} bytes received")
    if actual == 0:
        raise Unprocessable(
            "the file is empty (zero bytes)", hint="Choose the file again and re-upload it."
        )
    if sha256 is None:
        actual, sha256 = sha256_file(staged)
    return head, actual, sha256


async def commit_upload(
    store: Store,
    settings: Settings,
    *,
    owner_id: int,
    staged: Path,
    original_name: str,
    title: str = "",
    description: str = "",
    tags: Iterable[str] | str = (),
    visibility: str = "public",
    license: str = "",
    size: int | None = None,
    sha256: str | None = None,
    types: Mapping[str, MediaType] | None = None,
    guard: Callable[[sqlite3.Connection], None] | None = None,
    on_commit: Callable[[sqlite3.Connection, str], None] | None = None,
) -> Committed:
    """Commit the staged upload (invariant 2). Raises Unprocessable (422: empty), Unsupported
    (415), TooLarge (413: quota), BadRequest (400), Maintenance (503) or DiskFull (507).

    `guard(conn)`, if given, runs first inside the commit transaction and may refuse it (the
    CLI uses it to refuse writes while a live server is in maintenance). `on_commit(conn,
    media_id)`, if given, runs last inside the same transaction: the MediaGoblin importer
    records its legacy_map rows there, so an import killed at any instant stays consistent."""
    if visibility not in VISIBILITIES:
        raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    types = installed_media_types(settings) if types is None else types
    head, actual_size, digest = await trio.to_thread.run_sync(_inspect, staged, size, sha256)
    media_type, mime = sniff(head, types)
    # A cheap early refusal; the transaction checks the quota again, race-free.
    await store.read(check_quota, owner_id, actual_size, settings.user_quota_bytes)

    name = display_name(original_name)
    media = NewMedia(
        id=new_media_id(),
        owner_id=owner_id,
        kind=media_type.kind,
        mime=mime,
        path="",
        size=actual_size,
        sha256=digest,
        original_name=name,
        title=(title.strip() or default_title(name))[:MAX_TITLE_CHARS],
        description=description,
        tags=normalise_tags(tags),
        visibility=visibility,
        license=license.strip(),
    )
    relative = f"queue/{media.id}/original.{extension_for(mime)}"
    media = dataclasses.replace(media, path=relative)
    planned = media_type.plan(media.id, mime, settings)
    queued = settings.content / relative

    lock = await trio.to_thread.run_sync(_lock_queue, settings.content / "queue", fcntl.LOCK_SH)
    try:
        job_ids = await _move_and_insert(
            store, staged, queued, media, planned, settings, guard, on_commit
        )
    finally:
        os.close(lock)
    log.info(
        "upload committed: media=%s kind=%s mime=%s size=%d jobs=%s",
        media.id,
        media.kind.value,
        mime,
        actual_size,
        ",".join(map(str, job_ids)),
    )
    return Committed(media.id, media.kind, "processing")


async def _move_and_insert(
    store: Store,
    staged: Path,
    queued: Path,
    media: NewMedia,
    planned: list[PlannedJob],
    settings: Settings,
    guard: Callable[[sqlite3.Connection], None] | None,
    on_commit: Callable[[sqlite3.Connection, str], None] | None,
) -> list[int]:
    await trio.to_thread.run_sync(_mark_and_move, staged, queued)
    try:
        job_ids = await store.write(
            functools.partial(
                insert_media,
                media=media,
                planned=planned,
                max_attempts=settings.max_attempts,
                default_quota_bytes=settings.user_quota_bytes,
                guard=guard,
                on_commit=on_commit,
            )
        )
    except BaseException as e:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_put_back, queued, staged)
        if not isinstance(e, GremlinError):
            log.error("commit failed: media=%s error=%r", media.id, e)
        raise
    # Committed: from now on the row, not the mark, says what this directory is.
    (queued.parent / COMMITTING).unlink(missing_ok=True)
    return job_ids


def _mark_and_move(staged: Path, queued: Path) -> None:
    """queue/<id>/ gets its COMMITTING mark first; move_durable's fsync of the directory
    makes both entries durable, so a commit cut short always leaves the mark behind."""
    queued.parent.mkdir(parents=True, exist_ok=True)
    (queued.parent / COMMITTING).touch()
    move_durable(staged, queued)


def _put_back(queued: Path, staged: Path) -> None:
    """Undo the move after a failed transaction; if even that fails, do not leave it in queue/."""
    try:
        move_durable(queued, staged)
    except OSError:
        queued.unlink(missing_ok=True)
    (queued.parent / COMMITTING).unlink(missing_ok=True)
    try:
        queued.parent.rmdir()
    except OSError:
        pass


def _lock_queue(queue: Path, mode: int) -> int:
    """An fd of content/queue/ holding flock `mode` (the caller closes it to unlock)."""
    queue.mkdir(parents=True, exist_ok=True)
    fd = os.open(queue, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def no_commit_in_progress(queue: Path) -> Iterator[bool]:
    """Yields True while holding the exclusive lock (no commit anywhere is between its move and
    its transaction), False if a commit holds it now (try again later)."""
    try:
        fd = _lock_queue(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def sweep_aborted_commits(conn: sqlite3.Connection, content: Path) -> list[str]:
    """Return files of aborted commits (queue/<id>/ with its COMMITTING mark and no media row)
    to incoming/, as `aborted-<id>.bin`: never acknowledged, they are partial uploads, which
    the GC removes once stale. A queue/<id>/ with no mark and no row was acknowledged, but the
    database was put back to an older one (a revert, a restored backup): a person's, left for
    fsck to report. Returns the media ids swept; none while any commit is in progress."""
    queue, incoming = content / "queue", content / "incoming"
    swept: list[str] = []
    with no_commit_in_progress(queue) as quiet:
        if not quiet:
            return swept
        for entry in sorted(queue.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            mark = entry / COMMITTING
            if not mark.exists():
                continue
            if conn.execute("SELECT 1 FROM media WHERE id = ?", (entry.name,)).fetchone():
                mark.unlink()  # killed between its COMMIT and removing the mark
                continue
            parts = sorted(p for p in entry.iterdir() if p.name != COMMITTING)
            for n, part in enumerate(parts):
                suffix = "" if n == 0 else f"-{n}"
                move_durable(part, incoming / f"aborted-{entry.name}{suffix}.bin")
            mark.unlink()  # last: cut short, the next sweep finishes the rest
            entry.rmdir()
            swept.append(entry.name)
            log.warning(
                "aborted commit returned to incoming/: media=%s (never acknowledged)", entry.name
            )
    return swept

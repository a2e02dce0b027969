"""Integrity checks of content/ against the database: what is wrong, never what to do about it.

Five kinds of finding (the names are a stable interface, see DESIGN.md):

    missing        a files row whose file is not there
    orphan         a file under content/ (outside incoming/, jobs/, quarantine/) no row names
    mismatch       a file whose size or SHA-256 differs from its row
    stale_upload   a partial upload in incoming/ untouched for `incoming_stale_hours`
    stray_job_dir  a directory in jobs/ with no job row

Order matters against races: files are written before their rows are committed, so the tree is
always walked BEFORE the rows are read. A file whose row commits in between is then seen with
its row; one moved or removed in between (`still_there` looks again) is not reported; only a
commit still in flight can look like an orphan (repair re-checks those).
Repairs live in gremlin.store.fsck_repair; the runs in gremlin.actors.fsck.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import SiteError
from .content import sha256_file
from .site import COMMITTING, Site

UNSTORED = ("incoming", "jobs", "quarantine")  # top-level dirs of content/ that rows never name
ORIGINAL_ROLE = "original"


class Kind(enum.Enum):
    MISSING = "missing"
    ORPHAN = "orphan"
    MISMATCH = "mismatch"
    STALE_UPLOAD = "stale_upload"
    STRAY_JOB_DIR = "stray_job_dir"


@dataclasses.dataclass(frozen=True)
class FileRow:
    id: int
    media_id: str
    role: str
    path: str  # relative to content/
    size: int
    sha256: str

    @property
    def is_original(self) -> bool:
        return self.role == ORIGINAL_ROLE


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: Kind
    path: str  # relative to content/
    media_id: str | None = None
    detail: str = ""
    row: FileRow | None = None  # missing, mismatch: the row as it was checked
    identity: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of what was hashed
    members: tuple[str, ...] = ()  # stale_upload: every path of the upload, relative

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "path": self.path}
        out["media_id"] = self.media_id
        out["detail"] = self.detail
        if self.row is not None:
            out["role"] = self.row.role
        return out

    def line(self) -> str:
        media = f" (media {self.media_id})" if self.media_id else ""
        return printable(f"{self.kind.value:<14} {self.path}{media}: {self.detail}")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: a file name's control characters, newlines and bytes
    that are not UTF-8 (surrogate escapes) are shown escaped (\\n, \\x1b, \\xff), so a hostile
    name can neither split a report's line nor send escape sequences."""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ascii(ch)[1:-1])
    return "".join(out)


def storable(path: str) -> bool:
    """Can a files row name `path`? Rows hold UTF-8 text, so a name read from the disk that is
    not UTF-8 (surrogate escapes) is never named by one, and SQLite cannot even be asked."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def changed_at(st: os.stat_result) -> float:
    """When the file last changed in any way: a rename updates ctime, a write mtime."""
    return max(st.st_mtime, st.st_ctime)


# -- reading rows ------------------------------------------------------------------------------


def _file_row(r: sqlite3.Row) -> FileRow:
    return FileRow(r["id"], r["media_id"], r["role"], r["path"], r["size"], r["sha256"])


def file_rows(conn: sqlite3.Connection, after_id: int = 0, limit: int = -1) -> list[FileRow]:
    rows = conn.execute(
        "SELECT id, media_id, role, path, size, sha256 FROM files WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [_file_row(r) for r in rows]


def file_row_by_path(conn: sqlite3.Connection, path: str) -> FileRow | None:
    if not storable(path):
        return None
    r = conn.execute(
        "SELECT id, media_id, role, path, size, sha256 FROM files WHERE path = ?", (path,)
    ).fetchone()
    return None if r is None else _file_row(r)


def file_row_by_id(conn: sqlite3.Connection, file_id: int) -> FileRow | None:
    r = conn.execute(
        "SELECT id, media_id, role, path, size, sha256 FROM files WHERE id = ?", (file_id,)
    ).fetchone()
    return None if r is None else _file_row(r)


def referenced_paths(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT path FROM files")}


def job_ids(conn: sqlite3.Connection) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM jobs")}


def mark_verified(conn: sqlite3.Connection, ids: list[int], at: float) -> None:
    conn.executemany("UPDATE files SET verified_at = ? WHERE id = ?", [(at, i) for i in ids])


# -- walking the tree --------------------------------------------------------------------------


def walk_stored(site: Site) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every non-directory under content/ that a row should name."""
    root = site.content
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in UNSTORED]
        names = list(filenames)
        if here.parent == root / "queue":
            names = [n for n in names if n != COMMITTING]  # a commit's bookkeeping, no row
        # A symlink to a directory is listed as a directory; we never follow it: it is an entry.
        for d in list(dirnames):
            if (here / d).is_symlink():
                dirnames.remove(d)
                names.append(d)
        for name in sorted(names):
            path = here / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # moved away while we walked
            yield path.relative_to(root).as_posix(), st


def find_orphans(tree: dict[str, os.stat_result], referenced: set[str]) -> list[Finding]:
    """`tree` from walk_stored (walked before `referenced` was read)."""
    found = []
    for rel, st in sorted(tree.items()):
        if rel in referenced:
            continue
        what = "a file" if stat.S_ISREG(st.st_mode) else "an entry"
        found.append(
            Finding(Kind.ORPHAN, rel, None, f"{what} of {st.st_size} bytes that no row refers to")
        )
    return found


def still_there(
    site: Site, findings: list[Finding], tree: dict[str, os.stat_result]
) -> list[Finding]:
    """The orphan findings whose entry is still where the walk saw it, as it was. One that
    moved or went away after the walk, before the rows were read (an original settled from
    queue/ into originals/, a deleted media's file), was named by a row or by none: either
    way not an orphan."""
    kept = []
    for f in findings:
        try:
            st = (site.content / f.path).lstat()
        except FileNotFoundError:
            continue
        if identity(st) == identity(tree[f.path]):
            kept.append(f)
    return kept


def upload_id(name: str) -> str:
    """`abc.bin`, `abc.json` and a temporary `.abc.json.tmp-12` all belong to upload `abc`."""
    return name.lstrip(".").split(".", 1)[0]


def _newest_write(path: Path) -> float:
    """The newest mtime of an entry (of everything in it, for a directory)."""
    st = path.lstat()
    newest = st.st_mtime
    if stat.S_ISDIR(st.st_mode):
        for dirpath, _, filenames in os.walk(path):
            for name in filenames:
                try:
                    newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def find_stale_uploads(
    site: Site, now: float, stale_seconds: float, only: str | None = None
) -> list[Finding]:
    """Partial uploads in incoming/ whose every part is unwritten for `stale_seconds` (by mtime:
    each PATCH appends to <id>.bin, each state change rewrites <id>.json). `only`: one upload."""
    groups: dict[str, list[Path]] = {}
    try:
        entries = sorted(site.incoming.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        uid = upload_id(entry.name)
        if only is None or uid == only:
            groups.setdefault(uid, []).append(entry)
    found = []
    for uid, members in sorted(groups.items()):
        try:
            newest = max(_newest_write(m) for m in members)
        except FileNotFoundError:
            continue  # finished or removed while we looked
        age = now - newest
        if age < stale_seconds:
            continue
        rels = tuple(m.relative_to(site.content).as_posix() for m in members)
        main = next((r for r in rels if r.endswith(".bin")), rels[0])
        hours = age / 3600
        found.append(
            Finding(
                Kind.STALE_UPLOAD,
                main,
                None,
                f"partial upload {uid} untouched for {hours:.1f} h",
                members=rels,
            )
        )
    return found


def job_dir_names(site: Site) -> list[str]:
    try:
        return sorted(e.name for e in site.jobs.iterdir() if e.is_dir() and not e.is_symlink())
    except FileNotFoundError:
        return []


def find_stray_job_dirs(site: Site, names: list[str], ids: set[int]) -> list[Finding]:
    """`names` from job_dir_names (listed before `ids` was read)."""
    found = []
    for name in names:
        if name.isdigit() and int(name) in ids:
            continue
        found.append(
            Finding(Kind.STRAY_JOB_DIR, f"jobs/{name}", None, "a job directory with no job row")
        )
    return found


# -- verifying one file ------------------------------------------------------------------------


class Interrupted(Exception):
    """Raised by an `on_chunk` callback to abandon hashing (a budget ran out, a cancel)."""


hash_file = sha256_file  # (size, SHA-256) in 1 MiB reads, `on_chunk(n)` reporting progress


def verify(
    site: Site, row: FileRow, on_chunk: Callable[[int], None] | None = None
) -> Finding | None:
    """Check one row against its file: None when size and SHA-256 match."""
    try:
        path = site.path(row.path)
    except SiteError:
        return Finding(Kind.MISSING, row.path, row.media_id, "its path leaves content/", row)
    try:
        before = path.stat()
    except FileNotFoundError:
        return Finding(Kind.MISSING, row.path, row.media_id, f"{row.role} file is missing", row)
    if not stat.S_ISREG(before.st_mode):
        return Finding(Kind.MISSING, row.path, row.media_id, f"{row.role} is not a file", row)
    if before.st_size != row.size:
        detail = f"{row.role} is {before.st_size} bytes, its row says {row.size}"
        return Finding(Kind.MISMATCH, row.path, row.media_id, detail, row, identity(before))
    try:
        size, sha = hash_file(path, on_chunk)
    except FileNotFoundError:
        return Finding(Kind.MISSING, row.path, row.media_id, f"{row.role} file is missing", row)
    except OSError as e:  # EIO from a failing disk, EACCES: the bytes cannot be served either
        detail = f"{row.role} cannot be read: {e.strerror or e}"
        return Finding(Kind.MISMATCH, row.path, row.media_id, detail, row, identity(before))
    if size != row.size or sha != row.sha256:
        detail = f"{row.role} SHA-256 is {sha[:16]}..., its row says {row.sha256[:16]}..."
        return Finding(Kind.MISMATCH, row.path, row.media_id, detail, row, identity(before))
    return None

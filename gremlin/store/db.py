"""The one place that makes SQLite connections, and the one transaction helper."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import DiskFull, GremlinError, SiteError

APPLICATION_ID = 0x47524D4C  # "GRML": marks a database as ours
BUSY_TIMEOUT_MS = 10_000


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open `path` with our pragmas: WAL (verified), synchronous=FULL, foreign keys, busy timeout.

    `isolation_level=None` so that transactions are exactly the explicit BEGIN/COMMIT we issue;
    `check_same_thread=False` because trio's worker threads vary (callers hold one lock per
    connection).
    """
    uri = f"file:{Path(path)}?mode=ro" if readonly else f"file:{Path(path)}"
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
    except sqlite3.OperationalError as e:
        raise unusable(e, path) from e
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SiteError(
                    f"{path}: SQLite refused WAL mode (got {mode!r})",
                    hint="The site directory must be on a local filesystem that supports WAL.",
                )
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.DatabaseError):
            raise unusable(e, path) from e
        raise
    return conn


class DamagedDatabase(SiteError):
    """SQLite cannot read the database file: it is truncated, overwritten or corrupt."""


def unusable(e: sqlite3.Error, path: Path | str) -> GremlinError:
    """Why a database cannot be opened, as the admin can act on it (no permission, damage)."""
    path = Path(path)
    text = str(e).lower()
    if "readonly" in text or not _can_write(path):
        return SiteError(
            f"cannot open database {path}: permission denied ({e})",
            hint=f"Run gremlin as the user who owns {path.parent}, or give that user write "
            "access to the directory and its files (ls -l).",
        )
    if isinstance(e, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return DamagedDatabase(
            f"database {path} is damaged: {e}",
            hint="Stop the server, move the file aside and restore db.sqlite from your backup "
            "(docs/admin-guide.md), or put back a database an upgrade set aside: "
            f"gremlin revert {path.parent} (it keeps the damaged file beside it)",
        )
    if path.is_dir():
        return SiteError(f"cannot open database {path}: it is a directory")
    return SiteError(f"cannot open database {path}: {e}")


def _can_write(path: Path) -> bool:
    """Whether we may write the database and create its -wal/-shm files beside it."""
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return False
    return not path.parent.exists() or os.access(path.parent, os.W_OK | os.X_OK)


def translate(e: sqlite3.Error, path: Path | str) -> Exception:
    """Turn an sqlite3 error into one of ours where we know what it means."""
    text = str(e).lower()
    if "database or disk is full" in text or "disk i/o error" in text and "full" in text:
        return DiskFull(str(path))
    return e


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (or a deferred read) ... COMMIT; ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")

"""The one place that makes SQLite connections, and the one transaction helper."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import DiskFull, SiteError

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
        raise SiteError(f"cannot open database {path}: {e}") from e
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise SiteError(
                f"{path}: SQLite refused WAL mode (got {mode!r})",
                hint="The site directory must be on a local filesystem that supports WAL.",
            )
    conn.execute("PRAGMA synchronous = FULL")
    return conn


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

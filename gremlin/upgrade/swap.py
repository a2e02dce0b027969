"""Putting one database file in place of another, with the care SQLite's WAL needs.

The WAL and shared-memory files belong to the database's file NAME (db.sqlite-wal): every
connection is checkpointed (TRUNCATE) and closed before a rename, so no -wal content is left
to be applied to the wrong file. Renames are within the site directory, then it is fsynced.
Set-aside databases are never deleted by us.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

from ..store import connect, fsync_dir
from .protocol import UpgradeError

log = logging.getLogger(__name__)

SUFFIXES = ("-wal", "-shm", "-journal")
SET_ASIDE_RE = re.compile(r"^db_(?!new\.sqlite$).+\.sqlite$")


class DatabaseBusy(UpgradeError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} still has a write-ahead log after checkpointing: another process has it open",
            hint="Stop other gremlin commands on this site (see `fuser` or `lsof`) and retry.",
        )


def companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in SUFFIXES]


def remove_database(path: Path) -> None:
    """Remove a database we created (db_new.sqlite) and its companions; no error if absent."""
    removed = False
    for file in (path, *companions(path)):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
            removed = True
    if removed:
        fsync_dir(path.parent)


def close_checkpointed(conn: sqlite3.Connection, path: Path) -> None:
    """Checkpoint (TRUNCATE) and close `conn`; then `path` must have no WAL content left."""
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    deadline = time.monotonic() + 2.0
    while wal.exists() and wal.stat().st_size > 0:
        if time.monotonic() > deadline:
            raise DatabaseBusy(path)
        time.sleep(0.02)


def holds_database(pid: int, db: Path) -> bool:
    """Has process `pid` the database `db` (or its -wal, -shm) open or mapped? From /proc; a
    process we may not inspect counts as holding it, one that is gone as not."""
    names = {os.path.realpath(p) for p in (db, *companions(db))}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        with open(f"/proc/{pid}/maps") as maps:
            if any(line.rstrip("\n").split(maxsplit=5)[-1] in names for line in maps):
                return True
    except FileNotFoundError:
        return False
    except OSError:  # another user's process: assume the worst
        return True
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in names:
                return True
    return False


def checkpoint_file(path: Path) -> None:
    """Open `path`, checkpoint it and close, leaving a plain database file."""
    close_checkpointed(connect(path), path)


def set_aside_path(root: Path, version: str) -> Path:
    """db_<version>.sqlite, or db_<version>-2.sqlite ... if taken."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", version) or "unknown"
    candidate = root / f"db_{safe}.sqlite"
    n = 2
    while candidate.exists() or any(c.exists() for c in companions(candidate)):
        candidate = root / f"db_{safe}-{n}.sqlite"
        n += 1
    return candidate


def set_aside_databases(root: Path) -> list[Path]:
    """The databases set aside by upgrades and reverts, newest first."""
    found = [p for p in root.iterdir() if SET_ASIDE_RE.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_ctime, reverse=True)


def swap_in(current: Path, replacement: Path, set_aside: Path) -> None:
    """current -> set_aside, replacement -> current, fsync the directory.

    Both files must be closed and checkpointed. If the second rename fails, the first is
    undone, so the site is never left without its db.sqlite.
    """
    if set_aside.exists():
        raise UpgradeError(f"{set_aside} exists; refusing to overwrite a set-aside database")
    os.rename(current, set_aside)
    try:
        os.rename(replacement, current)
    except BaseException:
        os.rename(set_aside, current)
        raise
    fsync_dir(current.parent)
    log.info("database swapped in=%s set_aside=%s", replacement.name, set_aside.name)

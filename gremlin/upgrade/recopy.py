"""The copy inside the maintenance window: a plain file copy of the frozen old database.

An upgrade handover copies twice (handover.py):

1. Before the window, while the old server still serves and writes: `copy_database` of a
   snapshot of the live database (backup API or rows), the new version's steps and the full
   PRAGMA integrity_check. A transformation that fails on this site's data, or a copy that
   fails its checks, aborts the upgrade before the old server was ever disturbed. It also
   warms the page cache.
2. Inside the window (the old server acknowledged: writers stopped, WAL checkpointed, only
   reads and its handover rows from now on): `recopy_database` builds db_new.sqlite again from
   the now frozen database, so that every write made until the window is in it. Under
   BEGIN IMMEDIATE (no writer can append to the WAL meanwhile) with an empty -wal file, the
   database file holds every committed page: it is copied as a file (copy_file_range), every
   table's rows counted in that same transaction. If the WAL will not empty (a reader of
   another process holding an old snapshot), the copy falls back to the backup API. Then, on
   the copy: row counts compared, the remaining steps (the transformation, which succeeded on
   the pre-copy seconds earlier), meta, WAL mode, fsync (build.py, shared with copy.py).

The full PRAGMA integrity_check (1.4 s at 100,000 media; even quick_check is 0.5 s) is not
run inside the window: it ran on the pre-copy, and `check_integrity_later` runs it on the
new db.sqlite in the background once the new server serves. What it finds is logged as an
error that names `gremlin revert` (the old database is kept untouched as
db_<old version>.sqlite). A drifted schema (the pre-copy went by "rows") is copied again in
full by `copy_database` in the window, integrity check included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from ..errors import SchemaTooNew
from ..store import STEPS, Site, Step, connect, latest
from ..store.schema import APP_VERSION
from .build import (
    BUILD_PRAGMAS,
    CopyFailed,
    CopyReport,
    Phases,
    compare_counts,
    count_rows,
    discard_build,
    finish_build,
    report_build,
    schema_version_of,
)
from .copy import built_by_steps, copy_pages
from .swap import remove_database

log = logging.getLogger(__name__)

ATTEMPTS = 5  # checkpoint + empty-WAL tries before the backup API
BUSY_MS = 250  # each try waits at most this long for a reader or writer of the old database


def _wal_bytes(db: Path) -> int:
    try:
        return os.stat(db.with_name(db.name + "-wal")).st_size
    except FileNotFoundError:
        return 0


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return [r[0] for r in rows]


def copy_file_frozen(
    src: Path, dst: Path, *, attempts: int = ATTEMPTS, busy_ms: int = BUSY_MS
) -> dict[str, int] | None:
    """Copy `src` as a file into `dst` once its WAL is empty, holding the write lock while
    copying; return every table's row count, counted under that lock. None: the WAL did not
    empty in `attempts` tries (`dst` is then not created)."""
    old = connect(src)
    try:
        old.execute(f"PRAGMA busy_timeout = {busy_ms}")
        for attempt in range(1, attempts + 1):
            try:
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                old.execute("BEGIN IMMEDIATE")  # from here on no one appends to the WAL
            except sqlite3.OperationalError as e:  # busy: another writer holds the lock
                log.info("recopy: attempt=%d busy: %s", attempt, e)
            else:
                try:
                    wal = _wal_bytes(src)
                    if wal == 0:  # every committed page is in the file itself
                        counts = {table: count_rows(old, "main", table) for table in _tables(old)}
                        shutil.copyfile(src, dst)
                        return counts
                finally:
                    old.execute("ROLLBACK")
                log.info("recopy: attempt=%d the WAL still holds %d bytes", attempt, wal)
            time.sleep(0.01 * attempt)
        return None
    finally:
        old.close()


def recopy_database(
    src: Path,
    dst: Path,
    *,
    steps: Sequence[Step] = STEPS,
    app_version: str = APP_VERSION,
    handover_id: int | None = None,
    check: str | None = None,
    attempts: int = ATTEMPTS,
    busy_ms: int = BUSY_MS,
) -> CopyReport:
    """Build `dst` from the frozen `src` as described above; `dst` is replaced if it exists.

    The old schema must be the steps' own (the pre-copy went by "pages"). `check`: a PRAGMA
    to run on the copy ("quick_check", "integrity_check"), None to leave it to the new
    server. Raises CopyFailed (or SchemaTooNew); `dst` is then removed.
    """
    phase = Phases()
    remove_database(dst)
    conn: sqlite3.Connection | None = None
    try:
        counts = copy_file_frozen(src, dst, attempts=attempts, busy_ms=busy_ms)
        conn = connect(dst)
        for pragma in BUILD_PRAGMAS:
            conn.execute(pragma)
        if counts is None:
            log.warning("recopy: the old database's WAL did not empty: using the backup API")
            counts, method = copy_pages(conn, src), "pages"
        else:
            compare_counts(conn, counts)
            method = "file"
        phase("rows")
        from_schema = schema_version_of(conn, "main")
        if from_schema > latest(steps):
            raise SchemaTooNew(str(src), from_schema, latest(steps))
        if not built_by_steps(conn, steps, from_schema, schema="main"):
            raise CopyFailed("the old database's schema changed since the copy before the window")
        to_schema = finish_build(
            conn,
            dst,
            phase,
            steps=steps,
            app_version=app_version,
            handover_id=handover_id,
            check=check,
        )
    except BaseException as e:
        discard_build(conn, dst, e)
        raise
    return report_build(from_schema, to_schema, counts, phase, (), method, check)


def _integrity_check(conn: sqlite3.Connection) -> list[str]:
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


async def check_integrity_later(site: Site) -> bool:
    """PRAGMA integrity_check of the serving db.sqlite, for a copy that left it out of the
    window; logs what it finds (an error naming `gremlin revert`). True if it is ok.

    Read only, in its own read snapshot. Cancelled (the server stops), it interrupts the
    check: the worker thread then ends within milliseconds (it only closes its connection).
    """
    began = time.monotonic()
    conn = await trio.to_thread.run_sync(lambda: connect(site.db, readonly=True))
    try:
        found = await trio.to_thread.run_sync(_integrity_check, conn, abandon_on_cancel=True)
    except trio.Cancelled:
        with contextlib.suppress(sqlite3.ProgrammingError):  # already closed: it finished
            conn.interrupt()
        raise
    except sqlite3.Error as e:
        found = [f"{type(e).__name__}: {e}"]
    seconds = time.monotonic() - began
    if found == ["ok"]:
        log.info("integrity_check of the new database: ok seconds=%.2f", seconds)
        return True
    log.error(
        "integrity_check of the new database found problems: %s. The old database is kept"
        " as it was: stop this server and run `gremlin revert %s` to put it back",
        "; ".join(found[:5]),
        site.root,
    )
    return False

"""The async store: one writer connection behind a limiter of one, a few readers.

Queries are plain sync functions taking a connection; the store runs them in a worker thread:

    job = await store.write(claim_next_job, now)
    rows = await store.read(list_media, owner_id)

`write` wraps the function in BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception);
`read` runs it in a deferred transaction, so it sees one consistent snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import trio

from ..errors import Maintenance, SchemaTooNew, SiteError
from . import schema
from .db import connect, transaction, translate, unusable
from .handover import refuse_during_handover

log = logging.getLogger(__name__)

DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # not busy, full or misuse

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[sqlite3.Connection, P], T]


class _Conn:
    """A connection and the lock that keeps two threads off it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()


class Store:
    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        readers: list[sqlite3.Connection],
        *,
        guard_handover: bool = True,
    ):
        self.path = path
        self._guard_handover = guard_handover
        self._writer = _Conn(writer)
        self._write_limiter = trio.CapacityLimiter(1)
        self._readers = [_Conn(c) for c in readers]
        self._read_limiter = trio.CapacityLimiter(len(readers))
        self._free = list(self._readers)
        self._free_lock = threading.Lock()
        # SQLite's own word that the file is damaged, from the first query that met it: the
        # server goes on answering what it can, and /healthz says so (503).
        self.damage: str | None = None
        self._frozen = False
        self._writes_in_flight = 0
        self._writes_idle = trio.Event()
        self._writes_idle.set()

    # -- running queries -------------------------------------------------------------------

    def _run_write(self, fn: Callable[..., T], args: tuple[Any, ...], guard: bool = True) -> T:
        with self._writer.lock:
            try:
                with transaction(self._writer.conn):
                    # Every CLI writer (import, adduser, retry, fsck --repair ...) stops while
                    # an upgrade copies the data: its write would not be copied. The server
                    # opts out: its maintenance mode and `freeze` do that job.
                    if guard and self._guard_handover:
                        refuse_during_handover(self._writer.conn)
                    return fn(self._writer.conn, *args)
            except sqlite3.Error as e:
                self._note_damage(e)
                raise translate(e, self.path) from e

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._free_lock:
            handle = self._free.pop()
        try:
            with handle.lock, transaction(handle.conn, write=False):
                return fn(handle.conn, *args)
        except sqlite3.Error as e:
            self._note_damage(e)
            raise
        finally:
            with self._free_lock:
                self._free.append(handle)

    def _note_damage(self, e: sqlite3.Error) -> None:
        code = getattr(e, "sqlite_errorcode", None)  # extended: the primary in the low byte
        if code is not None and code & 0xFF in DAMAGED and self.damage is None:
            self.damage = str(e)
            log.error("database damaged: %s path=%s (try gremlin revert)", e, self.path)

    async def write(self, fn: Query[P, T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one write transaction. Refused while frozen (maintenance)."""
        if self._frozen:
            raise Maintenance()
        self._writes_in_flight += 1
        self._writes_idle = trio.Event() if self._writes_in_flight == 1 else self._writes_idle
        try:
            # Never abandon a write on cancel: the thread would go on committing regardless.
            return await trio.to_thread.run_sync(
                self._run_write, fn, args, limiter=self._write_limiter
            )
        finally:
            self._writes_in_flight -= 1
            if self._writes_in_flight == 0:
                self._writes_idle.set()

    async def read(self, fn: Query[P, T], *args: Any) -> T:
        return await trio.to_thread.run_sync(
            self._run_read, fn, args, limiter=self._read_limiter, abandon_on_cancel=True
        )

    # -- maintenance -----------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen

    async def freeze(self) -> None:
        """Refuse new writes and wait until those in flight are done (the caller bounds it)."""
        self._frozen = True
        await self._writes_idle.wait()

    def thaw(self) -> None:
        self._frozen = False

    async def write_unfrozen(self, fn: Query[P, T], *args: Any) -> T:
        """A write that goes through even while frozen: the handover's own rows only."""
        return await trio.to_thread.run_sync(
            self._run_write, fn, args, False, limiter=self._write_limiter
        )

    def checkpoint_sync(self) -> None:
        with self._writer.lock:
            self._writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def checkpoint(self) -> None:
        await trio.to_thread.run_sync(self.checkpoint_sync, limiter=self._write_limiter)

    def close(self) -> None:
        for handle in [self._writer, *self._readers]:
            with handle.lock:
                handle.conn.close()


def prepare(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open (creating if asked) and bring an empty database to the latest schema.

    A database of an older schema is not migrated in place: that is an upgrade's copy.
    """
    if not path.exists() and not create:
        raise SiteError(
            f"no database at {path}", hint=f"Create the site first: gremlin init {path.parent}"
        )
    if not path.exists() or path.stat().st_size == 0:
        _refuse_lost_database(path)  # before connect() writes a header into it
    conn = connect(path)
    try:
        if not schema.is_ours(conn):
            raise SiteError(
                f"{path} is an SQLite database that contentgremlin did not create",
                hint="Choose another site directory, or move that file away.",
            )
        found = schema.version_of(conn)
        known = schema.latest()
        if found > known:
            raise SchemaTooNew(str(path), found, known)
        if found == 0:
            _refuse_lost_database(path)
            schema.apply_steps(conn)
        elif found < known:
            raise SiteError(
                f"{path} has schema version {found}; this contentgremlin needs {known}",
                hint=f"Run: gremlin upgrade {path.parent}",
            )
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.DatabaseError):
            raise unusable(e, path) from e
        raise
    return conn


STORED = ("originals", "queue", "media")  # content/ directories whose files have rows


def _refuse_lost_database(path: Path) -> None:
    """An empty database beside stored files is a lost one (cut to 0 bytes, deleted), not a
    new site: a schema made here would turn every stored file into an fsck orphan."""
    content = path.parent / "content"
    for name in STORED:
        for _, _, files in os.walk(content / name):
            if files:
                raise SiteError(
                    f"{path} is empty (or missing) but {content / name} holds stored files: "
                    "the database was lost",
                    hint=f"Restore db.sqlite from your backup, or put back a database an upgrade "
                    f"set aside (gremlin revert {path.parent}); a new site needs a new directory.",
                )


@contextlib.asynccontextmanager
async def open_store(
    path: Path, *, create: bool = False, readers: int = 4, guard_handover: bool = True
) -> AsyncIterator[Store]:
    writer = await trio.to_thread.run_sync(lambda: prepare(path, create=create))
    reader_conns = [await trio.to_thread.run_sync(connect, path) for _ in range(readers)]
    store = Store(path, writer, reader_conns, guard_handover=guard_handover)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.close)

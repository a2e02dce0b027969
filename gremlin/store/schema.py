"""Numbered schema steps. Each step and its record are applied in one transaction.

The database is self-describing: `schema_steps` records which steps ran and with which app
version, `meta` holds the app version that last wrote it. An upgrade builds a new database by
these same steps (see gremlin.upgrade), so a step is the only way the schema ever changes.
Never edit a landed step: add a new one.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence

from .. import __version__
from .db import APPLICATION_ID, transaction

Apply = Callable[[sqlite3.Connection], None]


@dataclasses.dataclass(frozen=True)
class Step:
    number: int
    name: str
    statements: tuple[str, ...] = ()
    python: Apply | None = None  # data transformations that SQL alone cannot express

    def apply(self, conn: sqlite3.Connection) -> None:
        for statement in self.statements:
            conn.execute(statement)
        if self.python is not None:
            self.python(conn)


INITIAL = Step(
    1,
    "initial",
    (
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE schema_steps (
            step INTEGER PRIMARY KEY, name TEXT NOT NULL,
            applied_at REAL NOT NULL, app_version TEXT NOT NULL)""",
        # The database is the pidfile: at most one row, the live (or last) server.
        """CREATE TABLE server (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL, pid_start INTEGER NOT NULL, boot_id TEXT NOT NULL,
            version TEXT NOT NULL, bind TEXT, control_socket TEXT,
            started_at REAL NOT NULL, mode TEXT NOT NULL DEFAULT 'normal')""",
        # Upgrade handover requests and their stages (gremlin.upgrade owns this table).
        """CREATE TABLE handover (
            id INTEGER PRIMARY KEY,
            stage TEXT NOT NULL,
            new_pid INTEGER NOT NULL, new_pid_start INTEGER NOT NULL, new_boot_id TEXT NOT NULL,
            new_version TEXT NOT NULL,
            requested_at REAL NOT NULL, updated_at REAL NOT NULL, reason TEXT)""",
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            email TEXT, password_hash TEXT,
            is_admin INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0,
            bio TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '',
            location TEXT NOT NULL DEFAULT '',
            quota_bytes INTEGER,
            created_at REAL NOT NULL, last_signin_at REAL)""",
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL)""",
        """CREATE TABLE media (
            id TEXT PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES users(id),
            kind TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('processing', 'ready', 'failed')),
            title TEXT NOT NULL DEFAULT '', slug TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            visibility TEXT NOT NULL DEFAULT 'public'
                CHECK (visibility IN ('public', 'unlisted', 'private')),
            license TEXT NOT NULL DEFAULT '',
            original_name TEXT NOT NULL DEFAULT '',
            width INTEGER, height INTEGER, duration REAL,
            exif TEXT,
            reason TEXT,
            damaged TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, ready_at REAL)""",
        "CREATE INDEX media_owner ON media(owner_id, created_at)",
        "CREATE INDEX media_recent ON media(state, visibility, created_at)",
        # Every stored file under content/ (outside incoming/, jobs/, quarantine/) has a row.
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            mime TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            width INTEGER, height INTEGER, duration REAL,
            created_at REAL NOT NULL, verified_at REAL,
            UNIQUE (media_id, role))""",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            step TEXT NOT NULL,
            input_path TEXT NOT NULL, output_path TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            blocking INTEGER NOT NULL DEFAULT 1,
            attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
            not_before REAL NOT NULL DEFAULT 0,
            pid INTEGER, pid_start INTEGER, boot_id TEXT,
            started_at REAL, finished_at REAL,
            progress REAL NOT NULL DEFAULT 0,
            exit_code INTEGER, reason TEXT, log_path TEXT, log_tail TEXT,
            created_at REAL NOT NULL)""",
        "CREATE INDEX jobs_state ON jobs(state, not_before)",
        "CREATE INDEX jobs_media ON jobs(media_id)",
        """CREATE TABLE tags (
            media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            tag TEXT NOT NULL, PRIMARY KEY (media_id, tag))""",
        "CREATE INDEX tags_tag ON tags(tag)",
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES users(id),
            title TEXT NOT NULL, slug TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL, UNIQUE (owner_id, slug))""",
        """CREATE TABLE collection_items (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            position INTEGER NOT NULL, note TEXT, added_at REAL NOT NULL,
            PRIMARY KEY (collection_id, media_id))""",
        """CREATE TABLE comments (
            id INTEGER PRIMARY KEY,
            media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            author_id INTEGER NOT NULL REFERENCES users(id),
            body TEXT NOT NULL, created_at REAL NOT NULL)""",
        # The media page lists a media's comments, oldest first (and media deletes cascade).
        "CREATE INDEX comments_media ON comments(media_id, created_at)",
        """CREATE TABLE fsck_runs (
            id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
            findings INTEGER, report TEXT)""",
        # Rows brought over from another system (GNU MediaGoblin): source id -> our id.
        """CREATE TABLE legacy_map (
            source TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL,
            target_id TEXT NOT NULL, extra TEXT,
            PRIMARY KEY (source, kind, source_id))""",
    ),
)

STEPS: tuple[Step, ...] = (INITIAL,)

# Developer hook: `GREMLIN_EXTRA_SCHEMA=package.module:NAME` appends the module's tuple of
# Steps NAME (default STEPS) and, if the module sets VERSION, reports that app version. It is
# how the upgrade tests build an honest "next version" (docs/upgrading.md); never set in use.
EXTRA_SCHEMA_ENV = "GREMLIN_EXTRA_SCHEMA"


def _load_extra(spec: str | None) -> tuple[tuple[Step, ...], str | None]:
    if not spec:
        return (), None
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    extra = tuple(getattr(module, attr or "STEPS"))
    for expected, step in enumerate(extra, start=STEPS[-1].number + 1):
        if not isinstance(step, Step) or step.number != expected:
            raise ValueError(f"${EXTRA_SCHEMA_ENV}={spec}: step {expected} expected, got {step!r}")
    return extra, getattr(module, "VERSION", None)


_extra_steps, _extra_version = _load_extra(os.environ.get(EXTRA_SCHEMA_ENV))
STEPS = (*STEPS, *_extra_steps)
APP_VERSION: str = _extra_version or __version__  # the version this process reports


def latest(steps: Sequence[Step] = STEPS) -> int:
    return steps[-1].number if steps else 0


def version_of(conn: sqlite3.Connection) -> int:
    """The highest applied step, 0 for an empty database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_steps'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT max(step) FROM schema_steps").fetchone()
    return int(row[0] or 0)


def is_ours(conn: sqlite3.Connection) -> bool:
    """An empty database, or one stamped with our application id."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return True
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return app_id == 0 and tables == 0


def apply_steps(
    conn: sqlite3.Connection,
    *,
    upto: int | None = None,
    steps: Sequence[Step] = STEPS,
    app_version: str = APP_VERSION,
) -> list[int]:
    """Apply every step after the database's version (up to `upto`); return those applied."""
    target = latest(steps) if upto is None else upto
    applied = []
    for step in steps:
        if step.number > target:
            break
        with transaction(conn):
            if step.number <= version_of(conn):
                continue
            step.apply(conn)
            conn.execute(
                "INSERT INTO schema_steps (step, name, applied_at, app_version)"
                " VALUES (?, ?, ?, ?)",
                (step.number, step.name, time.time(), app_version),
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('app_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (app_version,),
            )
        applied.append(step.number)
    return applied

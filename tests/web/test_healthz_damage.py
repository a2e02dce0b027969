"""A database damaged under a running server: the query that meets the damage fails as
before, and from then on /healthz answers 503 `damaged` naming SQLite's error, so a monitor
notices (pages that miss the damaged pages go on answering; health said "ok" throughout)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from quart_trio import QuartTrio

from gremlin.settings import Settings
from gremlin.store import Store


def _fill(conn: sqlite3.Connection) -> None:
    now = time.time()
    conn.execute("INSERT INTO users (name, created_at) VALUES ('ann', ?)", (now,))
    conn.executemany(
        "INSERT INTO media (id, owner_id, kind, state, title, created_at, updated_at)"
        " VALUES (?, 1, 'image', 'ready', ?, ?, ?)",
        [(f"m{i:05d}", "x" * 200, now, now) for i in range(3000)],
    )


def _zero_middle(path: Path) -> None:
    """Zeros over the middle third: pages of type 0, which SQLite always calls malformed
    (random bytes sometimes read as some other error)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 3)
        f.write(bytes(size // 3))


def _scan(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM media WHERE title != ''").fetchone()[0])


async def test_healthz_says_damaged_once_a_query_met_it(
    app: QuartTrio, store: Store, settings: Settings
) -> None:
    await store.write(_fill)
    await store.checkpoint()
    client = app.test_client()
    assert (await client.get("/healthz")).status_code == 200

    _zero_middle(settings.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        await store.read(_scan)

    assert store.damage
    response = await client.get("/healthz")
    assert response.status_code == 503
    health = await response.get_json()
    assert health["status"] == "damaged"
    assert store.damage in health["error"]
    assert health["pid"] == os.getpid()


async def test_busy_or_missing_tables_are_not_damage(app: QuartTrio, store: Store) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await store.read(lambda conn: conn.execute("SELECT * FROM no_such_table").fetchall())
    assert store.damage is None
    assert (await app.test_client().get("/healthz")).status_code == 200

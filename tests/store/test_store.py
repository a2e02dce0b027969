import sqlite3
from pathlib import Path

import pytest

from gremlin.errors import SchemaTooNew, SiteError
from gremlin.store import STEPS, Step, apply_steps, connect, latest, open_store, version_of


def _count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM meta WHERE key LIKE 't%'").fetchone()[0]


async def test_write_commits_and_read_sees_it(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db.sqlite", create=True) as store:
        await store.write(lambda c: c.execute("INSERT INTO meta VALUES ('t1', 'x')"))
        assert await store.read(_count) == 1
    # A new connection (another process would be the same) sees the committed row.
    assert _count(connect(tmp_path / "db.sqlite")) == 1


async def test_write_rolls_back_on_any_exception(tmp_path: Path) -> None:
    def half_then_fail(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO meta VALUES ('t1', 'x')")
        raise RuntimeError("boom")

    async with open_store(tmp_path / "db.sqlite", create=True) as store:
        with pytest.raises(RuntimeError):
            await store.write(half_then_fail)
        assert await store.read(_count) == 0
        # The writer is usable afterwards: no transaction was left open.
        await store.write(lambda c: c.execute("INSERT INTO meta VALUES ('t2', 'y')"))
        assert await store.read(_count) == 1


def test_connection_pragmas(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_steps_applied_once_in_order_and_recorded(tmp_path: Path) -> None:
    extra = (
        *STEPS,
        Step(latest() + 1, "add-colour", ("ALTER TABLE media ADD COLUMN colour TEXT",)),
        Step(latest() + 2, "fill-colour", ("UPDATE media SET colour = 'red'",)),
    )
    conn = connect(tmp_path / "db.sqlite")
    assert apply_steps(conn, steps=extra, upto=latest()) == [s.number for s in STEPS]
    assert apply_steps(conn, steps=extra) == [latest() + 1, latest() + 2]
    assert apply_steps(conn, steps=extra) == []  # a second run applies nothing
    rows = conn.execute("SELECT step, name, app_version FROM schema_steps ORDER BY step").fetchall()
    assert [r["step"] for r in rows] == list(range(1, latest() + 3))
    assert rows[-1]["name"] == "fill-colour"
    assert version_of(conn) == latest() + 2
    assert conn.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()[0]


def test_failing_step_leaves_no_trace(tmp_path: Path) -> None:
    bad = (*STEPS, Step(latest() + 1, "bad", ("ALTER TABLE media ADD COLUMN x TEXT", "NONSENSE")))
    conn = connect(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        apply_steps(conn, steps=bad)
    assert version_of(conn) == latest()
    cols = [r[1] for r in conn.execute("PRAGMA table_info(media)")]
    assert "x" not in cols


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = connect(path)
    apply_steps(conn, steps=(*STEPS, Step(latest() + 1, "future", ("CREATE TABLE f (x)",))))
    conn.close()
    with pytest.raises(SchemaTooNew) as e:
        async with open_store(path):
            pass
    assert "newer than this contentgremlin knows" in str(e.value)
    assert e.value.hint


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE somebody_elses (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SiteError, match="did not create"):
        async with open_store(path):
            pass


async def test_frozen_store_refuses_writes(tmp_path: Path) -> None:
    from gremlin.errors import Maintenance

    async with open_store(tmp_path / "db.sqlite", create=True) as store:
        await store.freeze()
        with pytest.raises(Maintenance):
            await store.write(lambda c: None)
        store.thaw()
        await store.write(lambda c: None)

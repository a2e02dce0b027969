"""Copy with transformations: the same numbered steps, every row, counts, integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from gremlin.proc import ProcessId
from gremlin.store import STEPS, Step, apply_steps, connect, transaction, version_of
from gremlin.store.handover import Stage, read_handover, request_handover
from gremlin.upgrade import CopyFailed, copy_database
from gremlin.upgrade.swap import companions, set_aside_path
from tests.upgrade import next_version
from tests.upgrade.dbs import NEXT, TABLES, dump, fill


def test_copy_applies_the_next_steps_and_keeps_every_row(old_db: Path, tmp_path: Path) -> None:
    before = dump(old_db)
    new = tmp_path / "db_new.sqlite"
    report = copy_database(old_db, new, steps=NEXT, app_version="9.9")
    assert not any(p.exists() for p in companions(new))  # checkpointed and closed
    assert (report.from_schema, report.to_schema) == (STEPS[-1].number, next_version.NUMBER)
    assert report.method == "pages"  # the old schema is what the steps build
    assert report.rows["media"] == 30 and report.rows["files"] == 60 and report.rows["tags"] == 60
    conn = connect(new)
    assert version_of(conn) == next_version.NUMBER
    # The transformation ran on the copied rows: "a photo number 7" has 4 words.
    words = conn.execute("SELECT DISTINCT title_words FROM media").fetchall()
    assert [w[0] for w in words] == [4]
    assert conn.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()[0] == "9.9"
    steps = conn.execute("SELECT step, app_version FROM schema_steps ORDER BY step").fetchall()
    assert [s[0] for s in steps] == [s.number for s in NEXT]
    assert steps[-1][1] == "9.9"
    conn.close()
    after = dump(new)
    for table in TABLES:
        if table == "media":  # one column more, the rest equal
            assert [r[: len(before[table][0])] for r in after[table]] == before[table]
        else:
            assert after[table] == before[table]
    assert dump(old_db) == before  # the old database is only read


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_same_schema_copy_is_a_plain_copy(old_db: Path, tmp_path: Path) -> None:
    new = tmp_path / "db_new.sqlite"
    report = copy_database(old_db, new)
    assert report.from_schema == report.to_schema == STEPS[-1].number
    assert dump(new) == dump(old_db)


def test_row_by_row_copy_of_a_drifted_schema_keeps_every_row(old_db: Path, tmp_path: Path) -> None:
    """An old database built by an earlier, unreleased step 1 (here: lacking an index and
    having a nullable column the new one also has) is copied by column name."""
    conn = connect(old_db)
    conn.execute("DROP INDEX media_recent")
    conn.execute("DELETE FROM tags WHERE rowid = 3")  # a gap in a table with a hidden rowid
    conn.close()
    new = tmp_path / "db_new.sqlite"
    report = copy_database(old_db, new, steps=NEXT)
    assert report.method == "rows" and report.rows["media"] == 30
    assert [r[:19] for r in dump(new)["media"]] == dump(old_db)["media"]
    rowids = "SELECT rowid, media_id, tag FROM tags ORDER BY rowid"
    assert _rows(new, rowids) == _rows(old_db, rowids)  # rowids kept (revert compares by them)
    conn = connect(new)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'media_recent'").fetchone()
    conn.close()


def test_failing_transformation_removes_db_new(old_db: Path, tmp_path: Path) -> None:
    new = tmp_path / "db_new.sqlite"
    new.write_bytes(b"stale leftovers of an aborted attempt")
    with pytest.raises(CopyFailed, match="fails on purpose"):
        copy_database(old_db, new, steps=(*STEPS, *next_version.FAILING))
    assert not new.exists() and not any(p.exists() for p in companions(new))


def test_triggers_do_not_fire_during_the_copy(tmp_path: Path) -> None:
    """A step's trigger ran when the rows were first written; copying must not run it again."""
    steps = (
        *STEPS,
        Step(
            STEPS[-1].number + 1,
            "audit",
            (
                "CREATE TABLE audit (id INTEGER PRIMARY KEY, media_id TEXT)",
                "CREATE TRIGGER media_audit AFTER INSERT ON media"
                " BEGIN INSERT INTO audit (media_id) VALUES (new.id); END",
            ),
        ),
    )
    db = tmp_path / "db.sqlite"
    conn = connect(db)
    apply_steps(conn, steps=steps)
    conn.close()
    fill(db, 5)
    conn = connect(db)  # a schema that drifted from the steps: the copy goes row by row
    conn.execute("CREATE INDEX drifted ON media(title)")
    conn.close()
    new = tmp_path / "db_new.sqlite"
    assert copy_database(db, new, steps=steps).method == "rows"
    conn = connect(new)
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 5  # not 10
    # ... and the trigger is back for later inserts.
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
    conn.close()


def test_rows_that_would_be_dropped_fail_the_copy(old_db: Path, tmp_path: Path) -> None:
    """An old database with a column the new schema lacks (an older step 1): refuse."""
    conn = connect(old_db)
    conn.execute("ALTER TABLE media ADD COLUMN colour TEXT")
    conn.close()
    with pytest.raises(CopyFailed, match="colour of media"):
        copy_database(old_db, tmp_path / "db_new.sqlite")
    assert not (tmp_path / "db_new.sqlite").exists()


def test_the_copied_handover_row_is_done_in_the_new_database(old_db: Path, tmp_path: Path) -> None:
    conn = connect(old_db)
    with transaction(conn):
        hid = request_handover(conn, ProcessId.current(), "9.9")
    conn.close()
    new = tmp_path / "db_new.sqlite"
    copy_database(old_db, new, handover_id=hid)
    conn = connect(new)
    assert read_handover(conn, hid).stage is Stage.DONE
    conn.close()
    conn = connect(old_db)
    assert read_handover(conn, hid).stage is Stage.REQUESTED  # the old one is not touched
    conn.close()


def test_set_aside_names_take_a_suffix_when_taken(tmp_path: Path) -> None:
    assert set_aside_path(tmp_path, "0.1.0").name == "db_0.1.0.sqlite"
    (tmp_path / "db_0.1.0.sqlite").touch()
    assert set_aside_path(tmp_path, "0.1.0").name == "db_0.1.0-2.sqlite"
    (tmp_path / "db_0.1.0-2.sqlite-wal").touch()
    assert set_aside_path(tmp_path, "0.1.0").name == "db_0.1.0-3.sqlite"
    assert set_aside_path(tmp_path, "a/b").name == "db_a_b.sqlite"


def test_holds_database_sees_a_process_with_the_database_open(old_db: Path) -> None:
    """What the handover waits for before renaming: the old server closed every file of it."""
    import os

    from gremlin.upgrade.swap import holds_database

    conn = connect(old_db)
    conn.execute("SELECT count(*) FROM media").fetchone()
    assert holds_database(os.getpid(), old_db)
    conn.close()
    assert not holds_database(os.getpid(), old_db)
    assert not holds_database(2**22 + 7, old_db)  # no such process

"""The copy inside the handover window (gremlin/upgrade/recopy.py): a file copy of the frozen
old database that takes in every write made after the copy before the window."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from gremlin.store import STEPS, Site, connect, version_of
from gremlin.upgrade import CopyFailed, copy_database
from gremlin.upgrade.recopy import check_integrity_later, recopy_database
from gremlin.upgrade.swap import companions
from tests.upgrade import next_version
from tests.upgrade.dbs import NEXT, TABLES, dump, fill


def _same_rows(new: Path, old: Path) -> None:
    before, after = dump(old), dump(new)
    for table in TABLES:
        width = len(before[table][0]) if before[table] else 0
        assert [r[:width] for r in after[table]] == before[table], table


def test_recopy_takes_in_rows_written_after_the_precopy(old_db: Path, tmp_path: Path) -> None:
    new = tmp_path / "db_new.sqlite"
    assert copy_database(old_db, new, steps=NEXT).method == "pages"  # the copy before
    fill(old_db, 5, start=100)  # written after it, before the window
    writer = connect(old_db)  # ... and one still in the WAL: the recopy checkpoints it
    writer.execute("UPDATE media SET title = 'renamed late' WHERE id = 'm0000003'")
    report = recopy_database(old_db, new, steps=NEXT, app_version="9.9")
    writer.close()
    assert report.method == "file" and report.check is None
    assert report.rows["media"] == 35 and report.rows["tags"] == 70
    assert (report.from_schema, report.to_schema) == (STEPS[-1].number, next_version.NUMBER)
    assert not any(p.exists() for p in companions(new))  # checkpointed and closed
    _same_rows(new, old_db)
    conn = connect(new)
    assert version_of(conn) == next_version.NUMBER
    # The transformation ran on the copied rows, the late ones included.
    words = dict(conn.execute("SELECT id, title_words FROM media").fetchall())
    assert words["m0000103"] == 4 and words["m0000003"] == 2
    assert conn.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()[0] == "9.9"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_held_wal_falls_back_to_the_backup_api(
    old_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader of another process keeps an old snapshot: the WAL cannot be emptied, so the
    file alone lacks the last commit; the backup API copies the latest snapshot instead."""
    reader = connect(old_db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM media").fetchone()
    fill(old_db, 2, start=200)  # committed into the WAL, after the reader's snapshot
    new = tmp_path / "db_new.sqlite"
    try:
        with caplog.at_level(logging.INFO, "gremlin.upgrade.recopy"):
            report = recopy_database(old_db, new, steps=NEXT, attempts=3, busy_ms=20)
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert report.method == "pages"
    assert report.rows["media"] == 32
    assert "attempt=3" in caplog.text and "backup API" in caplog.text
    _same_rows(new, old_db)


def test_a_wal_emptied_on_a_later_attempt_is_copied_as_a_file(
    old_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = connect(old_db, readonly=True)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM media").fetchone()
    fill(old_db, 2, start=200)
    released = threading.Event()

    def release() -> None:
        reader.execute("ROLLBACK")
        released.set()

    timer = threading.Timer(0.3, release)
    timer.start()
    new = tmp_path / "db_new.sqlite"
    try:
        with caplog.at_level(logging.INFO, "gremlin.upgrade.recopy"):
            report = recopy_database(old_db, new, steps=NEXT, attempts=40, busy_ms=20)
    finally:
        timer.join()
        reader.close()
    assert released.is_set()
    assert report.method == "file"
    assert "attempt=1 " in caplog.text  # the first try found the WAL held
    assert report.rows["media"] == 32
    _same_rows(new, old_db)


def test_a_failing_transformation_in_the_recopy_removes_db_new(
    old_db: Path, tmp_path: Path
) -> None:
    new = tmp_path / "db_new.sqlite"
    with pytest.raises(CopyFailed, match="fails on purpose"):
        recopy_database(old_db, new, steps=(*STEPS, *next_version.FAILING))
    assert not new.exists() and not any(p.exists() for p in companions(new))
    assert dump(old_db)["media"]  # the old one is only read


def test_recopy_can_run_quick_check(old_db: Path, tmp_path: Path) -> None:
    report = recopy_database(old_db, tmp_path / "db_new.sqlite", check="quick_check")
    assert report.check == "quick_check" and "checks" in report.phases


def _damage_index(db: Path, index: str) -> None:
    """Overwrite the cells of `index`'s root page: the rows read fine, the index is garbage."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek(page[0] * size - 600)  # the end of the page, where its cells are
        f.write(b"\x07" * 600)


async def test_integrity_check_later_says_ok_or_names_revert(
    old_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(tmp_path)  # db.sqlite is old_db
    with caplog.at_level(logging.INFO, "gremlin.upgrade.recopy"):
        assert await check_integrity_later(site)
    assert "integrity_check of the new database: ok" in caplog.text
    _damage_index(old_db, "media_recent")
    caplog.clear()
    assert not await check_integrity_later(site)
    assert f"gremlin revert {tmp_path}" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)

"""Reading MediaGoblin's tables: the fixture's README tables, read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gremlin.mediagoblin.reader import (
    MediaGoblinError,
    open_mediagoblin_db,
    parse_time,
    read_instance,
)

from .conftest import MgCopy


def test_reads_the_fixture_as_its_readme_lists(mg: MgCopy) -> None:
    conn = open_mediagoblin_db(mg.db)
    try:
        instance = read_instance(conn)
    finally:
        conn.close()
    users = {u.username: u for u in instance.users}
    assert sorted(users) == ["alice", "bob", "carol"]
    assert [u.is_admin for u in instance.users] == [True, False, False]
    assert users["alice"].location == "Berlin"
    assert users["alice"].url == "https://alice.example.org/"
    assert users["alice"].bio.startswith("Gardener and amateur photographer.\n\n")
    assert all(u.pw_hash and u.pw_hash.startswith("$2b$12$") for u in instance.users)

    entries = {e.id: e for e in instance.entries}
    assert sorted(entries) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert entries[11].title == "Ünïcødé 猫 🐈" and entries[11].slug == "unicode-Mao"
    assert entries[13].state == "failed" and entries[14].state == "processing"
    assert entries[8].file("original") is None
    assert {f.key for f in entries[8].files} == {"thumb", "webm_480p", "webm_360p", "webm_720p"}
    assert entries[1].has_location and not entries[2].has_location
    assert [t.name for t in entries[1].tags] == ["cats", "garden"]
    assert entries[1].created == parse_time("2026-11-28 07:06:23.771289")
    assert instance.deleted_entries == 1

    (favourites,) = instance.collections
    assert favourites.title == "Favourites" and favourites.owner_id == 2
    assert [i.entry_id for i in favourites.items] == [1, 8, 10]
    assert [i.note for i in favourites.items] == [
        "Best cat photo on this site.",
        "Handy test clip.",
        None,
    ]
    assert [(c.author_id, c.entry_id) for c in instance.comments] == [(1, 11), (2, 11)]


def test_opening_creates_no_file_beside_the_database(mg: MgCopy) -> None:
    before = sorted(p.name for p in mg.root.iterdir())
    conn = open_mediagoblin_db(mg.db)
    read_instance(conn)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("CREATE TABLE x (y)")
    conn.close()
    assert sorted(p.name for p in mg.root.iterdir()) == before


def test_a_hot_journal_means_mediagoblin_is_running(tmp_path: Path) -> None:
    db = tmp_path / "mediagoblin.db"
    sqlite3.connect(db).execute("CREATE TABLE core__media_entries (id)").connection.close()
    (tmp_path / "mediagoblin.db-journal").write_bytes(b"x" * 512)
    with pytest.raises(MediaGoblinError, match="running") as e:
        open_mediagoblin_db(db)
    assert e.value.hint and "Stop MediaGoblin" in e.value.hint


def test_refuses_what_is_not_a_mediagoblin_database(tmp_path: Path) -> None:
    with pytest.raises(MediaGoblinError, match="no MediaGoblin database"):
        open_mediagoblin_db(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(MediaGoblinError, match="not a MediaGoblin database"):
        open_mediagoblin_db(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(MediaGoblinError, match="not an SQLite database"):
        open_mediagoblin_db(junk)


def test_timestamps_are_naive_utc() -> None:
    assert parse_time("1970-01-01 00:00:01.500000") == 1.5
    assert parse_time(None) == 0.0

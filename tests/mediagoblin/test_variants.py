"""Edge cases another MediaGoblin instance may have, made by editing a private copy of the
fixture (never the fixture): kept video originals, unreadable originals, missing files,
banned and password-less users, odd names, deleted targets, slug-less and unsupported media."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gremlin.mediagoblin import Kind, legacy_media_target, run_import
from gremlin.settings import Settings
from gremlin.store import Site, sha256_file

from .conftest import MgCopy, copy_fixture


@pytest.fixture
def variant(tmp_path: Path) -> MgCopy:
    mg = copy_fixture(tmp_path / "variant")
    public = mg.user_dev / "media" / "public" / "media_entries"
    stuck = next((mg.user_dev / "media" / "queue").rglob("a_stuck_clip_3s.mp4"))
    # 8: MediaGoblin kept the original video (keep_original = true).
    (public / "8" / "a_testsrc_3s.mp4").write_bytes(stuck.read_bytes())
    # 2: the original is in a format we do not take; 3: its original file is gone.
    (public / "2" / "a_sunset.jpg").write_bytes(b"BM" + b"\0" * 5000)
    (public / "3" / "a_kitchen.jpg").unlink()
    conn = sqlite3.connect(mg.db)
    with conn:
        conn.execute(
            "INSERT INTO core__mediafiles (media_entry, name_id, file_path) VALUES (8, 3, ?)",
            ("media_entries/8/a_testsrc_3s.mp4",),
        )
        conn.execute("INSERT INTO core__user_bans (user_id, reason) VALUES (3, 'spam')")
        conn.execute("UPDATE core__local_users SET pw_hash = NULL WHERE id = 2")
        conn.execute("UPDATE core__local_users SET username = 'jürgen_' WHERE id = 3")
        # 12 has no slug (MediaGoblin then uses /u/<user>/m/id:12/); 6 is a PDF.
        conn.execute("UPDATE core__media_entries SET slug = NULL WHERE id = 12")
        conn.execute(
            "UPDATE core__media_entries SET media_type = 'mediagoblin.media_types.pdf' WHERE id = 6"
        )
        # Bob's third favourite and alice's comment now point at deleted things.
        conn.execute("UPDATE core__collection_items SET object_id = 4 WHERE id = 3")
        conn.execute("UPDATE core__comment_links SET target_id = 4 WHERE id = 1")
    conn.close()
    return mg


async def test_edge_cases(settings: Settings, site: Site, variant: MgCopy) -> None:
    report = await run_import(settings, variant.db, variant.user_dev)
    problems = {(i.kind, i.source_id): i.why for i in report.problems}
    skipped = {(i.kind, i.source_id): i.why for i in report.skipped}

    assert "not usable here" in problems[(Kind.MEDIA, "2")]
    assert "'medium' rendition" in problems[(Kind.MEDIA, "2")]
    assert "'medium' rendition" in problems[(Kind.MEDIA, "3")]
    assert "no password hash" in problems[(Kind.USER, "2")]
    assert "'pdf' is not supported" in skipped[(Kind.MEDIA, "6")]
    assert "deleted" in skipped[(Kind.COLLECTION_ITEM, "3")]
    assert "deleted media" in skipped[(Kind.COMMENT, "1")]
    assert report.imported[Kind.MEDIA] == 11  # 13 entries - the PDF - the failed upload
    assert report.imported[Kind.COLLECTION_ITEM] == 2 and report.imported[Kind.COMMENT] == 1

    conn = sqlite3.connect(site.db)
    conn.row_factory = sqlite3.Row
    users = {r["name"]: r for r in conn.execute("SELECT * FROM users")}
    assert sorted(users) == ["alice", "bob", "jürgen_"]
    assert users["jürgen_"]["disabled"] == 1 and users["alice"]["disabled"] == 0
    assert users["bob"]["password_hash"] is None

    def original_of(mg_id: int) -> dict[str, Any]:
        return dict(
            conn.execute(
                "SELECT f.* FROM files f JOIN legacy_map l ON l.target_id = f.media_id"
                " WHERE l.kind = 'media' AND l.source_id = ? AND f.role = 'original'",
                (str(mg_id),),
            ).fetchone()
        )

    public = variant.user_dev / "media" / "public" / "media_entries"
    assert original_of(8)["sha256"] == sha256_file(public / "8" / "a_testsrc_3s.mp4")[1]
    assert original_of(2)["sha256"] == sha256_file(public / "2" / "a_sunset.medium.jpg")[1]
    assert original_of(3)["sha256"] == sha256_file(public / "3" / "a_kitchen.medium.jpg")[1]
    twelve = conn.execute(
        "SELECT target_id FROM legacy_map WHERE kind = 'media' AND source_id = '12'"
    ).fetchone()[0]
    slug = conn.execute("SELECT slug FROM media WHERE id = ?", (twelve,)).fetchone()[0]
    assert slug == "harbour-at-dawn"  # made from the title, like our own uploads
    assert legacy_media_target(conn, "bob", "id:12") == twelve
    assert legacy_media_target(conn, "alice", "id:12") is None
    conn.close()

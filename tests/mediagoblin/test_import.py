"""Importing the fixture instance and comparing with its README."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gremlin.accounts import verify_password
from gremlin.mediagoblin import Kind, run_import
from gremlin.mediagoblin.report import Report
from gremlin.settings import Settings, load
from gremlin.store import Site, sha256_file

from .conftest import MgCopy


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def db(site: Site) -> sqlite3.Connection:
    conn = sqlite3.connect(site.db)
    conn.row_factory = sqlite3.Row
    return conn


def media_of(conn: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    """Our media by MediaGoblin entry id, with tags, owner name and the original's row."""
    out = {}
    for m in conn.execute(
        "SELECT m.*, u.name AS owner, l.source_id FROM legacy_map l JOIN media m"
        " ON m.id = l.target_id JOIN users u ON u.id = m.owner_id"
        " WHERE l.source = 'mediagoblin' AND l.kind = 'media'"
    ):
        row = dict(m)
        row["tags"] = sorted(
            t[0] for t in conn.execute("SELECT tag FROM tags WHERE media_id = ?", (m["id"],))
        )
        row["original"] = dict(
            conn.execute(
                "SELECT * FROM files WHERE media_id = ? AND role = 'original'", (m["id"],)
            ).fetchone()
        )
        out[int(m["source_id"])] = row
    return out


def snapshot(site: Site) -> dict[str, Any]:
    """What an import produced, without our generated ids: to compare two runs."""
    with db(site) as conn:
        media = media_of(conn)
        by_media_id = {m["id"]: mg_id for mg_id, m in media.items()}
        keep = (
            "owner",
            "kind",
            "state",
            "title",
            "slug",
            "description",
            "license",
            "created_at",
            "tags",
        )
        return {
            "users": [
                dict(r)
                for r in conn.execute(
                    "SELECT name, email, is_admin, bio, url, location, created_at, password_hash"
                    " FROM users ORDER BY name"
                )
            ],
            "media": {
                i: {k: m[k] for k in keep} | {"sha256": m["original"]["sha256"]}
                for i, m in media.items()
            },
            "items": [
                (r["title"], by_media_id[r["media_id"]], r["position"], r["note"])
                for r in conn.execute(
                    "SELECT c.title, i.* FROM collection_items i JOIN collections c"
                    " ON c.id = i.collection_id ORDER BY c.id, i.position"
                )
            ],
            "comments": [
                (by_media_id[r["media_id"]], r["name"], r["body"], r["created_at"])
                for r in conn.execute(
                    "SELECT c.*, u.name FROM comments c JOIN users u ON u.id = c.author_id"
                    " ORDER BY c.created_at"
                )
            ],
            "legacy": sorted(
                (r[0], r[1]) for r in conn.execute("SELECT kind, source_id FROM legacy_map")
            ),
            "jobs": conn.execute("SELECT count(*) FROM jobs").fetchone()[0],
            "queue_files": sorted(p.name for p in site.queue.rglob("*") if p.is_file()),
            "incoming": sorted(p.name for p in site.incoming.iterdir()),
        }


async def import_into(settings: Settings, mg: MgCopy, **kw: Any) -> Report:
    return await run_import(settings, mg.db, mg.user_dev, **kw)


async def test_import_matches_the_readme(settings: Settings, site: Site, mg: MgCopy) -> None:
    report = await import_into(settings, mg)
    assert report.imported[Kind.USER] == 3
    assert report.imported[Kind.MEDIA] == 12  # 13 entries, minus the failed 13 (4 is deleted)
    assert dict(report.media_by_kind) == {"image": 9, "video": 2, "audio": 1}
    assert report.imported[Kind.COLLECTION] == 1
    assert report.imported[Kind.COLLECTION_ITEM] == 3
    assert report.imported[Kind.COMMENT] == 2
    problems = {(p.kind, p.source_id): p.why for p in report.problems}
    assert list(problems) == [(Kind.MEDIA, "13")]
    assert "unreadable" in problems[(Kind.MEDIA, "13")]
    assert "BadMediaFail" in problems[(Kind.MEDIA, "13")]
    notes = {(n.kind, n.source_id): n.why for n in report.notes}
    assert notes[(Kind.MEDIA, "14")] == (
        "MediaGoblin left it processing; imported to be processed again"
    )
    assert report.failed

    conn = db(site)
    users = {r["name"]: r for r in conn.execute("SELECT * FROM users")}
    assert sorted(users) == ["alice", "bob", "carol"]
    assert [users[n]["is_admin"] for n in ("alice", "bob", "carol")] == [1, 0, 0]
    assert users["alice"]["email"] == "alice@example.org"
    assert users["alice"]["url"] == "https://alice.example.org/"
    assert users["alice"]["location"] == "Berlin"
    assert users["alice"]["bio"] == (
        "Gardener and amateur photographer.\n\nI post *cats*, plants and the occasional"
        " [test clip](https://example.org/clips)."
    )
    assert users["bob"]["bio"] == "" and users["bob"]["url"] == ""
    assert users["carol"]["created_at"] == utc("2026-11-28 07:06:20.960332")
    for name in ("alice", "bob", "carol"):
        stored = users[name]["password_hash"]
        assert stored.startswith("$2b$12$")  # kept as MediaGoblin wrote it
        ok, rehash = verify_password(stored, f"{name}pass123")
        assert ok and rehash is not None and rehash.startswith("$argon2id$")
        assert verify_password(stored, "wrong password") == (False, None)

    media = media_of(conn)
    assert sorted(media) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14]
    expect = {
        1: (
            "alice",
            "image",
            "Garden cat",
            "garden-cat",
            "CC BY-SA 4.0",
            ["cats", "garden"],
            "2026-11-28 07:06:23.771289",
        ),
        2: (
            "alice",
            "image",
            "Sunset over the allotments",
            "sunset-over-the-allotments",
            "CC0 1.0",
            ["garden", "sky"],
            "2026-11-28 07:06:23.904196",
        ),
        3: (
            "alice",
            "image",
            "Kitchen window",
            "kitchen-window",
            "",
            ["home"],
            "2026-11-28 07:06:23.972584",
        ),
        5: (
            "alice",
            "image",
            "Old bridge (portrait)",
            "old-bridge-portrait",
            "CC BY 4.0",
            ["architecture", "river"],
            "2026-11-28 07:06:24.092328",
        ),
        6: (
            "alice",
            "image",
            "Apple tree",
            "apple-tree",
            "CC BY-SA 4.0",
            ["garden", "trees"],
            "2026-11-28 07:06:24.159901",
        ),
        7: (
            "alice",
            "image",
            "Garden plan (PNG)",
            "garden-plan-png",
            "Public Domain",
            ["garden", "plans"],
            "2026-11-28 07:06:24.228599",
        ),
        8: (
            "alice",
            "video",
            "Test pattern clip",
            "test-pattern-clip",
            "CC BY 4.0",
            ["test", "video"],
            "2026-11-28 07:06:24.372839",
        ),
        9: (
            "alice",
            "audio",
            "C5 tone",
            "c5-tone",
            "CC0 1.0",
            ["audio", "tone"],
            "2026-11-28 07:06:26.202971",
        ),
        10: (
            "bob",
            "image",
            "My bicycle",
            "my-bicycle",
            "CC BY-NC 4.0",
            ["bikes"],
            "2026-11-28 07:06:26.657459",
        ),
        11: (
            "bob",
            "image",
            "Ünïcødé 猫 🐈",
            "unicode-Mao",
            "CC BY-SA 4.0",
            ["cats"],
            "2026-11-28 07:06:26.727131",
        ),
        12: (
            "bob",
            "image",
            "Harbour at dawn",
            "harbour-at-dawn",
            "",
            [],
            "2026-11-28 07:06:26.796633",
        ),
        14: (
            "alice",
            "video",
            "Interrupted clip",
            "interrupted-clip",
            "CC BY 4.0",
            ["video"],
            "2026-11-28 07:06:29.803116",
        ),
    }
    for mg_id, (owner, kind, title, slug, license, tags, created) in expect.items():
        m = media[mg_id]
        got = (m["owner"], m["kind"], m["title"], m["slug"], m["license"], m["tags"])
        assert got == (owner, kind, title, slug, license, tags), mg_id
        assert m["created_at"] == pytest.approx(utc(created), abs=1e-6), mg_id
        assert m["visibility"] == "public" and m["state"] == "processing"
    assert media[1]["description"] == (
        "Our cat *Miso* inspecting the **tomatoes**.\n\nShot with a phone held sideways"
        " (EXIF orientation 6), GPS on. More on [my blog](https://alice.example.org/miso)."
    )
    assert media[6]["description"] == "- planted 2019\n- first apples 2023"
    assert media[12]["description"] == ""

    # The files: MediaGoblin's original byte for byte, else its best rendition, else its
    # queued upload; each with its checksum, in our queue/ for our own processing.
    public = mg.user_dev / "media" / "public" / "media_entries"
    queue = mg.user_dev / "media" / "queue" / "media_entries"
    sources = {
        1: public / "1" / "a_garden_cat_gps_rot6.jpg",
        7: public / "7" / "a_diagram.png",
        8: public / "8" / "a_testsrc_3s.720p.webm",
        9: public / "9" / "a_tone_3s.mp3",
        14: queue / "37f488e4-1388-43dc-9a0f-887677948435" / "a_stuck_clip_3s.mp4",
    }
    for mg_id, source in sources.items():
        original = media[mg_id]["original"]
        size, digest = sha256_file(source)
        assert (original["size"], original["sha256"]) == (size, digest), mg_id
        assert sha256_file(site.path(original["path"])) == (size, digest)
        assert original["path"].startswith("queue/")
    jobs = conn.execute("SELECT media_id, state FROM jobs").fetchall()
    assert {j["media_id"] for j in jobs} == {m["id"] for m in media.values()}
    assert {j["state"] for j in jobs} == {"queued"}
    assert list(site.incoming.iterdir()) == []

    # GPS is never copied anywhere: no field of the media row holds the position.
    row = conn.execute("SELECT * FROM media WHERE id = ?", (media[1]["id"],)).fetchone()
    text = json.dumps(list(row), ensure_ascii=False)
    assert "52.5" not in text and "13.40" not in text and "Berlin" not in text

    items = conn.execute(
        "SELECT c.title, c.slug, c.description, c.created_at, u.name, i.* FROM collection_items i"
        " JOIN collections c ON c.id = i.collection_id JOIN users u ON u.id = c.owner_id"
        " ORDER BY i.position"
    ).fetchall()
    by_media_id = {m["id"]: mg_id for mg_id, m in media.items()}
    assert [(r["title"], r["slug"], r["name"]) for r in items] == [
        ("Favourites", "favourites", "bob")
    ] * 3
    assert items[0]["description"] == "Things I *really* like."
    assert [by_media_id[r["media_id"]] for r in items] == [1, 8, 10]
    assert [r["note"] for r in items] == ["Best cat photo on this site.", "Handy test clip.", None]
    assert items[0]["added_at"] == pytest.approx(utc("2026-11-28 07:06:28.314497"), abs=1e-6)

    comments = conn.execute(
        "SELECT c.*, u.name FROM comments c JOIN users u ON u.id = c.author_id ORDER BY c.id"
    ).fetchall()
    assert [(by_media_id[c["media_id"]], c["name"], c["body"]) for c in comments] == [
        (11, "alice", "What a lovely cat! **Ten out of ten.**"),
        (11, "bob", "@alice thanks! Her name is *Mochi*."),
    ]
    assert comments[0]["created_at"] == pytest.approx(utc("2026-11-28 07:06:26.980905"), abs=1e-6)
    conn.close()


async def test_second_run_imports_nothing(settings: Settings, site: Site, mg: MgCopy) -> None:
    await import_into(settings, mg)
    first = snapshot(site)
    again = await import_into(settings, mg)
    assert sum(again.imported.values()) == 0
    assert again.already[Kind.USER] == 3 and again.already[Kind.MEDIA] == 12
    assert again.already[Kind.COLLECTION] == 1 and again.already[Kind.COLLECTION_ITEM] == 3
    assert again.already[Kind.COMMENT] == 2
    assert [(p.kind, p.source_id) for p in again.problems] == [(Kind.MEDIA, "13")]
    assert snapshot(site) == first


class Interrupted(Exception):
    pass


async def test_interrupted_run_finishes_on_the_next(
    tmp_path: Path, settings: Settings, site: Site, mg: MgCopy
) -> None:
    from gremlin.media.commit import commit_upload

    calls = 0

    async def dies_after_five(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise Interrupted
        return await commit_upload(*args, **kwargs)

    with pytest.raises(Interrupted):
        await import_into(settings, mg, commit=dies_after_five)
    with db(site) as conn:
        assert conn.execute("SELECT count(*) FROM media").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] == 0
    resumed = await import_into(settings, mg)
    assert resumed.already[Kind.MEDIA] == 5 and resumed.imported[Kind.MEDIA] == 7

    # Same result as one uninterrupted run into another site.
    from gremlin.store import init_site

    other = init_site(tmp_path / "other")
    await import_into(load(other.root, environ={}), mg)
    a, b = snapshot(site), snapshot(other)
    for key in ("users", "media", "items", "comments", "legacy", "jobs", "incoming"):
        assert a[key] == b[key], key
    assert len(a["queue_files"]) == len(b["queue_files"]) == 12


async def test_dry_run_writes_nothing(tmp_path: Path, mg: MgCopy) -> None:
    absent = tmp_path / "not-yet"
    report = await run_import(load(absent, environ={}), mg.db, mg.user_dev, dry_run=True)
    assert not absent.exists()
    assert report.dry_run
    assert report.imported[Kind.USER] == 3 and report.imported[Kind.MEDIA] == 12
    assert report.imported[Kind.COLLECTION_ITEM] == 3 and report.imported[Kind.COMMENT] == 2
    assert [(p.kind, p.source_id) for p in report.problems] == [(Kind.MEDIA, "13")]


async def test_dry_run_on_an_existing_site(settings: Settings, site: Site, mg: MgCopy) -> None:
    await import_into(settings, mg)
    before = {p: p.read_bytes() for p in site.root.rglob("*") if p.is_file()}
    report = await import_into(settings, mg, dry_run=True)
    assert sum(report.imported.values()) == 0 and report.already[Kind.MEDIA] == 12
    after = {p: p.read_bytes() for p in site.root.rglob("*") if p.is_file()}
    assert after == before


async def test_report_json_shape(settings: Settings, mg: MgCopy) -> None:
    data = (await import_into(settings, mg)).to_json()
    assert set(data) == {
        "dry_run",
        "imported",
        "already",
        "media_by_kind",
        "skipped",
        "problems",
        "notes",
        "mapped",
    }
    assert data["imported"] == {
        "users": 3,
        "media": 12,
        "collections": 1,
        "collection_items": 3,
        "comments": 2,
    }
    assert set(data["media_by_kind"]) == {"image", "video", "audio"}
    (problem,) = data["problems"]
    assert set(problem) == {"kind", "id", "label", "why", "path"}
    assert problem["kind"] == "media" and problem["id"] == "13"
    assert problem["path"].endswith("b_corrupt.jpg")
    media = [m for m in data["mapped"] if m["kind"] == "media"]
    assert len(media) == 12 and all(m["target"] for m in media)
    json.dumps(data)


async def test_dry_run_beside_a_running_server(settings: Settings, site: Site, mg: MgCopy) -> None:
    """With the site's database open (as a server holds it), -wal and -shm exist: the dry run
    reads through them and its report reflects what is already imported."""
    from gremlin.store import open_store

    await import_into(settings, mg)
    async with open_store(site.db) as store:
        names = sorted(p.name for p in site.root.iterdir())
        assert "db.sqlite-wal" in names
        report = await import_into(settings, mg, dry_run=True)
        assert sorted(p.name for p in site.root.iterdir()) == names
        await store.read(lambda conn: conn.execute("SELECT 1").fetchone())
    assert report.already[Kind.MEDIA] == 12 and sum(report.imported.values()) == 0

"""The pure decisions: which file is the source, licenses, users, what is skipped and why."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gremlin.mediagoblin.legacy import choose_role
from gremlin.mediagoblin.mapping import SourceFrom, choose_source, license_name
from gremlin.mediagoblin.plan import ExistingUser, Kind, plan_import
from gremlin.mediagoblin.reader import MgInstance, open_mediagoblin_db, read_instance

from .conftest import MgCopy

PUBLIC = Path("/mg/media/public")
QUEUE = Path("/mg/media/queue")


@pytest.fixture
def instance(mg: MgCopy) -> MgInstance:
    conn = open_mediagoblin_db(mg.db)
    try:
        return read_instance(conn)
    finally:
        conn.close()


def on_disk(instance: MgInstance, mg: MgCopy, plan_root: Path = PUBLIC.parents[1]):  # type: ignore[no-untyped-def]
    """`exists` answering for the fixture's real files under the fake roots."""

    def exists(path: Path) -> bool:
        return (mg.user_dev / path.relative_to(plan_root)).is_file()

    return exists


def plan(instance: MgInstance, mg: MgCopy, **kw):  # type: ignore[no-untyped-def]
    args = {"mapped": {}, "existing_users": {}, **kw}
    return plan_import(instance, public=PUBLIC, queue=QUEUE, exists=on_disk(instance, mg), **args)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("https://creativecommons.org/licenses/by-sa/4.0/", "CC BY-SA 4.0"),
        ("https://creativecommons.org/licenses/by-nc/4.0/", "CC BY-NC 4.0"),
        ("http://creativecommons.org/licenses/by-nc-nd/3.0/", "CC BY-NC-ND 3.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0 1.0"),
        ("https://creativecommons.org/publicdomain/mark/1.0/", "Public Domain"),
        (None, ""),
        ("", ""),
        ("https://example.org/my-licence", "https://example.org/my-licence"),
    ],
)
def test_license_names(uri: str | None, name: str) -> None:
    assert license_name(uri) == name


def test_the_source_of_each_entry(instance: MgInstance, mg: MgCopy) -> None:
    entries = {e.id: e for e in instance.entries}
    exists = on_disk(instance, mg)
    src = {i: choose_source(e, PUBLIC, QUEUE, exists) for i, e in entries.items()}
    assert src[1] == (
        PUBLIC / "media_entries/1/a_garden_cat_gps_rot6.jpg",
        SourceFrom.ORIGINAL,
        "original",
    )
    # No original video kept, its queue file removed: the best (largest) rendition.
    assert src[8] == (
        PUBLIC / "media_entries/8/a_testsrc_3s.720p.webm",
        SourceFrom.RENDITION,
        "webm_720p",
    )
    assert src[9] is not None and src[9][2] == "original"
    assert src[13] is not None and src[13][1] is SourceFrom.QUEUE
    assert src[14] == (
        QUEUE / "media_entries/37f488e4-1388-43dc-9a0f-887677948435/a_stuck_clip_3s.mp4",
        SourceFrom.QUEUE,
        "queue",
    )
    # An image whose original vanished falls back to its medium rendition, never its thumb.
    no_original = lambda p: p.name != "a_sunset.jpg"  # noqa: E731
    assert choose_source(entries[2], PUBLIC, QUEUE, no_original)[2] == "medium"  # type: ignore[index]
    assert (
        choose_source(entries[2], PUBLIC, QUEUE, lambda p: p.name.endswith("thumbnail.jpg")) is None
    )


def test_plan_of_the_fixture(instance: MgInstance, mg: MgCopy) -> None:
    p = plan(instance, mg)
    assert [u.mg.username for u in p.users] == ["alice", "bob", "carol"]
    assert all(u.name == u.mg.username and u.merge_into is None for u in p.users)
    assert [m.entry.id for m in p.media] == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    licenses = {m.entry.id: m.license for m in p.media}
    assert licenses[1] == "CC BY-SA 4.0" and licenses[3] == "" and licenses[7] == "Public Domain"
    names = {m.entry.id: m.original_name for m in p.media}
    assert names[8] == "a_testsrc_3s.webm" and names[14] == "a_stuck_clip_3s.mp4"
    # No problem is known before files are read (13's bytes are judged by the runner).
    assert p.problems == () and p.skipped == ()
    notes = {(n.kind, n.source_id): n.why for n in p.notes}
    assert "did not keep the original video" in notes[(Kind.MEDIA, "8")]
    history = {m.entry.id: m.history for m in p.media}
    assert history[14] == "MediaGoblin left it processing"
    assert history[13] == "MediaGoblin failed to process it (mediagoblin.processing:BadMediaFail)"
    assert history[1] == "" and history[8] == ""
    assert "deleted" in notes[(Kind.MEDIA, "-")]
    gps = [n for n in p.notes if "GPS" in n.why]
    assert [n.source_id for n in gps] == ["1"]
    assert [c.id for c in p.comments] == [1, 2]


def test_done_items_are_left_out(instance: MgInstance, mg: MgCopy) -> None:
    mapped = {(Kind.USER, "1"): "1", (Kind.MEDIA, "1"): "abc", (Kind.COMMENT, "1"): "7"}
    p = plan(instance, mg, mapped=mapped)
    assert [u.mg.id for u in p.users] == [2, 3]
    assert 1 not in [m.entry.id for m in p.media]
    assert [c.id for c in p.comments] == [2]
    assert p.already == {Kind.USER: 1, Kind.MEDIA: 1, Kind.COMMENT: 1}


def test_a_taken_name_is_merged_by_email_or_renamed(instance: MgInstance, mg: MgCopy) -> None:
    existing = {
        "alice": ExistingUser(5, "Alice", "ALICE@example.org"),
        "bob": ExistingUser(6, "bob", "someone-else@example.org"),
        "bob-mg": ExistingUser(7, "bob-mg", None),
        "carol": ExistingUser(8, "carol", None),  # no e-mail to prove it is her: not merged
    }
    p = plan(instance, mg, existing_users=existing)
    users = {u.mg.username: u for u in p.users}
    assert users["alice"].merge_into == 5
    assert users["bob"].merge_into is None and users["bob"].name == "bob-mg2"
    assert users["carol"].merge_into is None and users["carol"].name == "carol-mg"
    assert [(i.source_id, "taken" in i.why) for i in p.problems] == [("2", True), ("3", True)]


def test_owners_and_authors_not_imported(instance: MgInstance, mg: MgCopy) -> None:
    remote_bob = dataclasses.replace(
        instance,
        users=tuple(u for u in instance.users if u.username != "bob"),
        remote_user_ids=frozenset({2}),
    )
    p = plan(remote_bob, mg)
    skipped = {(i.kind, i.source_id): i.why for i in p.skipped}
    assert "remote" in skipped[(Kind.MEDIA, "10")]
    assert "author was not imported" in skipped[(Kind.COMMENT, "2")]
    assert "owner was not imported" in skipped[(Kind.COLLECTION, "1")]
    assert 10 not in [m.entry.id for m in p.media]


def test_unsupported_types_and_missing_files(instance: MgInstance, mg: MgCopy) -> None:
    entries = list(instance.entries)
    entries[0] = dataclasses.replace(entries[0], media_type="pdf")
    p = plan_import(
        dataclasses.replace(instance, entries=tuple(entries)),
        public=PUBLIC,
        queue=QUEUE,
        exists=lambda path: "media_entries/2/" not in path.as_posix(),
        mapped={},
        existing_users={},
    )
    skipped = {(i.kind, i.source_id): i.why for i in p.skipped}
    problems = {(i.kind, i.source_id): i.why for i in p.problems}
    assert "'pdf' is not supported" in skipped[(Kind.MEDIA, "1")]
    assert "no file of it exists" in problems[(Kind.MEDIA, "2")]


def test_file_roles_for_old_urls() -> None:
    image = {"original": None, "thumb": 360, "medium": 1280}
    assert choose_role("medium", image) == "medium"
    assert choose_role("thumb", image) == "thumb"
    assert choose_role("original", image) == "original"
    assert choose_role("medium", {"original": None}) == "original"
    video = {"original": 360, "video_360": 360, "video_720": 720, "poster": 720, "thumb": 360}
    assert choose_role("webm_480p", video) == "video_360"
    assert choose_role("webm_720p", video) == "video_720"
    assert choose_role("thumb", video) == "thumb"
    audio = {"original": None, "audio_mp3": None, "audio_opus": None, "waveform": None}
    assert choose_role("webm_audio", audio) == "audio_opus"
    assert choose_role("spectrogram", audio) == "waveform"
    assert choose_role("whatever", {}) is None

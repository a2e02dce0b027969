"""The upload commit (invariant 2): sniff, quota, move to queue/, one transaction."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gremlin.accounts import create_user
from gremlin.errors import TooLarge, Unprocessable, Unsupported
from gremlin.media import Kind, PlannedJob, load_media_types
from gremlin.media.commit import (
    commit_upload,
    display_name,
    extension_for,
    new_media_id,
    normalise_tags,
)
from gremlin.media.image import ImageType
from gremlin.settings import Settings
from gremlin.store import Site, Store, open_store

from .images import image_bytes, write


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    async with open_store(settings.db_path) as store:
        yield store


@pytest.fixture
async def owner(store: Store) -> int:
    return await store.write(lambda c: create_user(c, "alice", None))


def staged_file(site: Site, data: bytes, name: str = "upload-1") -> Path:
    return write(site.incoming / name, data)


def queue_files(site: Site) -> list[Path]:
    return sorted(p for p in site.queue.rglob("*") if p.is_file())


async def rows(store: Store, table: str) -> list[dict[str, object]]:
    return await store.read(lambda c: [dict(r) for r in c.execute(f"SELECT * FROM {table}")])


async def test_commit_moves_the_file_to_queue_and_writes_media_file_and_jobs(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    data = image_bytes("PNG")
    staged = staged_file(site, data)
    committed = await commit_upload(
        store,
        settings,
        owner_id=owner,
        staged=staged,
        original_name="../../etc/pass\x00wd\n.jpg",  # a PNG with a hostile name and extension
        tags=[" Cats", "cats", "SUMMER  holiday", "", "x" * 500],
        visibility="unlisted",
    )
    assert committed.kind is Kind.IMAGE and committed.state == "processing"
    assert not staged.exists()
    queued = site.queue / committed.media_id / "original.png"
    assert queue_files(site) == [queued]
    assert queued.read_bytes() == data

    [media] = await rows(store, "media")
    assert media["id"] == committed.media_id and media["owner_id"] == owner
    assert media["state"] == "processing" and media["kind"] == "image"
    assert media["original_name"] == "passwd.jpg"
    assert media["title"] == "passwd" and media["visibility"] == "unlisted"
    [file] = await rows(store, "files")
    assert file["role"] == "original" and file["mime"] == "image/png"
    assert file["path"] == f"queue/{committed.media_id}/original.png"
    assert file["size"] == len(data) and file["sha256"] == hashlib.sha256(data).hexdigest()
    [job] = await rows(store, "jobs")
    assert job["media_id"] == committed.media_id and job["step"] == "derive"
    assert job["state"] == "queued" and job["max_attempts"] == settings.max_attempts
    assert job["input_path"] == file["path"]
    tags = {r["tag"] for r in await rows(store, "tags")}
    assert tags == {"cats", "summer holiday", "x" * 64}


async def test_zero_bytes_are_refused_and_nothing_is_written(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    staged = staged_file(site, b"")
    with pytest.raises(Unprocessable, match="empty") as caught:
        await commit_upload(store, settings, owner_id=owner, staged=staged, original_name="a.jpg")
    assert caught.value.status == 422
    assert staged.exists() and queue_files(site) == []
    assert await rows(store, "media") == []


async def test_text_named_jpg_is_unsupported(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    staged = staged_file(site, b"just some text\n" * 100)
    with pytest.raises(Unsupported) as caught:
        await commit_upload(store, settings, owner_id=owner, staged=staged, original_name="a.jpg")
    assert caught.value.status == 415 and "image/jpeg" in (caught.value.hint or "")
    assert queue_files(site) == [] and await rows(store, "media") == []


async def test_quota_from_the_user_row_and_from_settings(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    data = image_bytes("PNG")
    await commit_upload(
        store, settings, owner_id=owner, staged=staged_file(site, data), original_name="1.png"
    )
    quota = len(data) + 10
    await store.write(
        lambda c: c.execute("UPDATE users SET quota_bytes = ? WHERE id = ?", (quota, owner))
    )
    staged = staged_file(site, data, "upload-2")
    with pytest.raises(TooLarge, match="quota") as caught:
        await commit_upload(store, settings, owner_id=owner, staged=staged, original_name="2.png")
    assert caught.value.status == 413 and staged.exists()

    other = await store.write(lambda c: create_user(c, "bob", None))
    small = Settings(site=settings.site, user_quota_bytes=len(data) - 1)
    with pytest.raises(TooLarge):
        await commit_upload(store, small, owner_id=other, staged=staged, original_name="2.png")
    assert len(await rows(store, "media")) == 1 and len(queue_files(site)) == 1


class BrokenPlanType(ImageType):
    """Plans a job whose input file does not exist: the transaction fails half-way."""

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        return [PlannedJob("derive", {"thumb": "t.webp"}), PlannedJob("x", {}, input_role="nope")]


async def test_a_failed_transaction_leaves_no_row_and_no_queued_file(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    staged = staged_file(site, image_bytes("JPEG"))
    with pytest.raises(LookupError):
        await commit_upload(
            store,
            settings,
            owner_id=owner,
            staged=staged,
            original_name="a.jpg",
            types={"image": BrokenPlanType()},
        )
    assert staged.exists() and queue_files(site) == []
    assert list(site.queue.iterdir()) == []
    for table in ("media", "files", "jobs", "tags"):
        assert await rows(store, table) == []


async def test_a_size_mismatch_is_an_incomplete_upload(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    staged = staged_file(site, image_bytes("JPEG"))
    with pytest.raises(Unprocessable, match="incomplete"):
        await commit_upload(
            store, settings, owner_id=owner, staged=staged, original_name="a", size=10**9
        )


def test_extensions_come_from_the_sniffed_type() -> None:
    assert extension_for("image/jpeg") == "jpg"
    assert extension_for("video/quicktime") == "mov"
    assert extension_for("video/x-matroska") == "mkv"
    assert extension_for("application/x-thing+json") == "xthing"
    assert extension_for("weird") == "bin"


def test_names_ids_and_tags() -> None:
    assert display_name("C:\\Users\\x\\holiday.jpg") == "holiday.jpg"
    assert display_name("\u202egpj.exe") == "gpj.exe"  # no bidi override tricks
    assert display_name("") == "upload"
    ids = {new_media_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 24 and i.isalnum() and i.islower() for i in ids)
    assert normalise_tags("a, B ,a,,c") == ("a", "b", "c")
    assert len(normalise_tags([str(i) for i in range(500)])) == 50


def test_registry_default_types_include_image() -> None:
    assert "image" in load_media_types(Settings())


async def test_guard_and_on_commit_run_inside_the_one_transaction(
    store: Store, settings: Settings, site: Site, owner: int
) -> None:
    def refuse(conn: object) -> None:
        raise Unprocessable("not now")

    staged = staged_file(site, image_bytes("PNG"))
    with pytest.raises(Unprocessable, match="not now"):
        await commit_upload(
            store, settings, owner_id=owner, staged=staged, original_name="a", guard=refuse
        )
    assert staged.exists() and queue_files(site) == [] and await rows(store, "media") == []

    def retitle(conn: sqlite3.Connection, media_id: str) -> None:
        conn.execute("UPDATE media SET title = 'from hook' WHERE id = ?", (media_id,))

    committed = await commit_upload(
        store, settings, owner_id=owner, staged=staged, original_name="a", on_commit=retitle
    )
    [media] = await rows(store, "media")
    assert media["id"] == committed.media_id and media["title"] == "from hook"

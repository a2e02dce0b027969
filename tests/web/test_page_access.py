"""Who sees what on the pages: owner, another member, a visitor, an admin x public, unlisted,
private (and media that is not ready yet)."""

from __future__ import annotations

import itertools

import pytest
from quart_trio import QuartTrio

from gremlin.store import Store

from .conftest import add_user
from .pageclient import signed_in, text_of
from .pagedata import media

VIEWERS = ("owner", "member", "visitor", "admin")
# Who may open the media page, per visibility (processing media: owner and admin only).
MAY_OPEN = {
    "public": {"owner", "member", "visitor", "admin"},
    "unlisted": {"owner", "member", "visitor", "admin"},
    "private": {"owner", "admin"},
    "processing": {"owner", "admin"},
}
# Whose listings (the owner's gallery) show it.
LISTED_IN_GALLERY = {
    "public": {"owner", "member", "visitor", "admin"},
    "unlisted": {"owner", "admin"},
    "private": {"owner", "admin"},
    "processing": {"owner", "admin"},
}


@pytest.fixture
async def world(app: QuartTrio, store: Store) -> dict[str, object]:
    owner_id, _ = await add_user(store, "olive")
    await add_user(store, "mark")
    await add_user(store, "ada", admin=True)
    ids = {}
    for case in MAY_OPEN:
        if case == "processing":
            ids[case] = await media(store, owner_id, title=f"T-{case}", state="processing")
        else:
            ids[case] = await media(
                store, owner_id, title=f"T-{case}", visibility=case, tags=("t",)
            )
    clients = {
        "owner": await signed_in(app, "olive"),
        "member": await signed_in(app, "mark"),
        "visitor": app.test_client(),
        "admin": await signed_in(app, "ada"),
    }
    return {"ids": ids, "clients": clients}


async def test_media_pages_by_viewer_and_visibility(world: dict) -> None:  # type: ignore[type-arg]
    for viewer, case in itertools.product(VIEWERS, MAY_OPEN):
        client, media_id = world["clients"][viewer], world["ids"][case]
        r = await client.get(f"/m/{media_id}")
        expected = 200 if viewer in MAY_OPEN[case] else 404
        assert r.status_code == expected, (viewer, case)
        body = await text_of(r)
        if expected == 404:
            assert f"T-{case}" not in body  # a 404 page never leaks the title
        # Edit links only for who manages it.
        manages = viewer in ("owner", "admin")
        assert (f"/m/{media_id}/edit" in body) == (manages and expected == 200), (viewer, case)


async def test_listings_by_viewer_and_visibility(world: dict) -> None:  # type: ignore[type-arg]
    for viewer in VIEWERS:
        await check_listings(world["clients"][viewer], world["ids"], viewer)


async def check_listings(client: object, ids: dict[str, str], viewer: str) -> None:
    gallery = await text_of(await client.get("/u/olive"))  # type: ignore[attr-defined]
    home = await text_of(await client.get("/"))  # type: ignore[attr-defined]
    tag = await text_of(await client.get("/tag/t"))  # type: ignore[attr-defined]
    feed = await text_of(await client.get("/u/olive/feed.atom"))  # type: ignore[attr-defined]
    for case, media_id in ids.items():
        assert (media_id in gallery) == (viewer in LISTED_IN_GALLERY[case]), (viewer, case)
        # The home page, tag pages and feeds list public media only, whoever looks.
        assert (media_id in home) == (case == "public"), (viewer, case)
        assert (media_id in tag) == (case == "public"), (viewer, case)
        assert (media_id in feed) == (case == "public"), (viewer, case)


async def test_oembed_serves_public_and_unlisted_only(world: dict) -> None:  # type: ignore[type-arg]
    client = world["clients"]["admin"]  # oEmbed answers as a visitor, even to an admin
    for case, media_id in world["ids"].items():
        r = await client.get(f"/oembed?url=http://localhost/m/{media_id}&format=json")
        assert r.status_code == (200 if case in ("public", "unlisted") else 404), case


async def test_admin_panel_is_for_admins(world: dict) -> None:  # type: ignore[type-arg]
    clients = world["clients"]
    r = await clients["visitor"].get("/admin")
    assert r.status_code == 303 and r.headers["Location"].startswith("/signin?next=/admin")
    assert (await clients["member"].get("/admin")).status_code == 403
    assert (await clients["owner"].get("/admin/jobs.json")).status_code == 403
    assert (await clients["admin"].get("/admin")).status_code == 200


async def test_upload_and_collections_need_signing_in(app: QuartTrio) -> None:
    visitor = app.test_client()
    for path in ("/upload", "/collections"):
        r = await visitor.get(path)
        assert r.status_code == 303 and "/signin?next=" in r.headers["Location"], path

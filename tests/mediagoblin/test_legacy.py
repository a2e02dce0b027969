"""Old MediaGoblin URLs answer 301 with our page or file (in-process test client)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gremlin.mediagoblin import run_import
from gremlin.runtime import Runtime
from gremlin.settings import Settings
from gremlin.store import Site, open_store
from gremlin.web.app import create_app

from .conftest import MgCopy


@pytest.fixture
async def client(settings: Settings, site: Site, mg: MgCopy) -> AsyncIterator[Any]:
    await run_import(settings, mg.db, mg.user_dev)
    async with open_store(settings.db_path) as store:
        app = create_app(Runtime(settings, store))
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0
        yield app.test_client()


def ours(site: Site) -> dict[str, str]:
    conn = sqlite3.connect(site.db)
    rows = conn.execute(
        "SELECT source_id, target_id FROM legacy_map WHERE kind = 'media'"
    ).fetchall()
    conn.close()
    return {s: t for s, t in rows}


async def moved(client: Any, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 301, (path, response.status_code)
    return str(response.headers["Location"])


async def test_media_pages_redirect(client: Any, site: Site) -> None:
    media = ours(site)
    assert await moved(client, "/u/alice/m/garden-cat/") == f"/m/{media['1']}"
    assert await moved(client, "/u/bob/m/unicode-Mao/") == f"/m/{media['11']}"
    assert await moved(client, "/u/alice/m/interrupted-clip/") == f"/m/{media['14']}"
    assert await moved(client, "/u/alice/m/id:8/") == f"/m/{media['8']}"
    assert await moved(client, "/u/bob/m/unicode-Mao/c/1/") == f"/m/{media['11']}"
    for missing in (
        "/u/alice/m/broken-upload/",
        "/u/bob/m/garden-cat/",
        "/u/bob/m/id:1/",
        "/u/bob/m/broken-upload/",
        "/u/alice/m/blurry-duplicate/",
    ):
        assert (await client.get(missing)).status_code == 404, missing


async def test_files_redirect_to_the_corresponding_role(client: Any, site: Site) -> None:
    media = ours(site)
    base = "/mgoblin_media/media_entries"
    # Nothing is processed yet: every old file URL leads to the original, which exists.
    assert await moved(client, f"{base}/1/a_garden_cat_gps_rot6.jpg") == (
        f"/files/{media['1']}/original"
    )
    assert await moved(client, f"{base}/1/a_garden_cat_gps_rot6.medium.jpg") == (
        f"/files/{media['1']}/original"
    )
    assert await moved(client, f"{base}/8/a_testsrc_3s.480p.webm") == (
        f"/files/{media['8']}/original"
    )
    assert (await client.get(f"{base}/4/anything.jpg")).status_code == 404

    # Once our processing made derived files, the old names find their counterparts.
    conn = sqlite3.connect(site.db)
    for media_id, role, height in [
        (media["1"], "medium", 1280),
        (media["1"], "thumb", 360),
        (media["8"], "video_360", 360),
        (media["8"], "video_720", 720),
    ]:
        conn.execute(
            "INSERT INTO files (media_id, role, path, mime, size, sha256, height, created_at)"
            " VALUES (?, ?, ?, 'x/y', 1, 'x', ?, 0)",
            (media_id, role, f"media/{media_id}/{role}", height),
        )
    conn.commit()
    conn.close()
    assert await moved(client, f"{base}/1/a_garden_cat_gps_rot6.medium.jpg") == (
        f"/files/{media['1']}/medium"
    )
    assert await moved(client, f"{base}/1/a_garden_cat_gps_rot6.thumbnail.jpg") == (
        f"/files/{media['1']}/thumb"
    )
    assert await moved(client, f"{base}/8/a_testsrc_3s.720p.webm") == (
        f"/files/{media['8']}/video_720"
    )
    assert await moved(client, f"{base}/8/a_testsrc_3s.360p.webm") == (
        f"/files/{media['8']}/video_360"
    )


async def test_users_and_collections_redirect(client: Any) -> None:
    assert await moved(client, "/u/bob/collection/favourites/") == "/u/bob/c/favourites"
    assert await moved(client, "/u/carol/") == "/u/carol"
    assert (await client.get("/u/alice/collection/favourites/")).status_code == 404
    assert (await client.get("/u/nobody/")).status_code == 404
    assert await moved(client, "/u/bob/collections/") == "/u/bob/collections"
    assert await moved(client, "/u/alice/atom/") == "/u/alice/feed.atom"
    assert await moved(client, "/u/alice/tag/cats/") == "/tag/cats"
    assert await moved(client, "/tag/cats/") == "/tag/cats"
    assert await moved(client, "/atom/") == "/feed.atom"
    # Our own gallery route, without the slash, is not shadowed by the legacy one.
    assert (await client.get("/u/carol")).status_code == 200


async def test_imported_users_sign_in_with_their_mediagoblin_password(
    client: Any, site: Site
) -> None:
    from ..web.pageclient import csrf_from

    def stored(name: str) -> str:
        conn = sqlite3.connect(site.db)
        try:
            return str(
                conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()[
                    0
                ]
            )
        finally:
            conn.close()

    assert stored("alice").startswith("$2b$")
    wrong = await client.post(
        "/signin",
        form={"name": "alice", "password": "nope", "csrf_token": await csrf_from(client)},
    )
    assert wrong.status_code == 401 and stored("alice").startswith("$2b$")
    right = await client.post(
        "/signin",
        form={
            "name": "alice",
            "password": "alicepass123",
            "csrf_token": await csrf_from(client),
            "next": "/",
        },
    )
    assert right.status_code == 303
    assert stored("alice").startswith("$argon2id$")  # rehashed on the first success
    assert stored("bob").startswith("$2b$")

"""Stored files: the authorization matrix (API and files), ranges, ETag/304, X-Accel-Redirect."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Runtime
from gremlin.web.app import create_app
from gremlin.web.ranges import ByteRange, RangeNotSatisfiable, parse_range

from .conftest import add_user, bearer
from .helpers import make_media

THUMB = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=90-", 100, ByteRange(90, 99)),
        ("bytes=95-200", 100, ByteRange(95, 99)),
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        ("bytes=5-1", 100, None),  # invalid: ignored, whole file
        ("bytes=0-1,5-6", 100, None),  # several ranges: whole file
        ("items=0-1", 100, None),
        ("bytes=abc", 100, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-1", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


async def test_authorization_matrix_for_api_and_files(app: QuartTrio, runtime: Runtime) -> None:
    owner_id, owner = await add_user(runtime.store, "owner")
    _, other = await add_user(runtime.store, "other")
    _, admin = await add_user(runtime.store, "admin", admin=True)
    who = {"owner": bearer(owner), "other": bearer(other), "visitor": {}, "admin": bearer(admin)}
    allowed = {
        "public": {"owner", "other", "visitor", "admin"},
        "unlisted": {"owner", "other", "visitor", "admin"},
        "private": {"owner", "admin"},
        "processing": {"owner", "admin"},
    }
    content = runtime.site.content
    media = {
        vis: await make_media(runtime.store, content, owner_id, visibility=vis, thumb=THUMB)
        for vis in ("public", "unlisted", "private")
    }
    media["processing"] = await make_media(runtime.store, content, owner_id, state="processing")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for case, media_id in media.items():
            for name, headers in who.items():
                expected = 200 if name in allowed[case] else 404
                api = await client.get(f"/api/v1/media/{media_id}", headers=headers)
                assert api.status_code == expected, (case, name, "api")
                file = await client.get(f"/files/{media_id}/thumb", headers=headers)
                assert file.status_code == expected, (case, name, "file")
                if expected == 200:
                    body = await api.get_json()
                    assert (body["jobs"] == [] and body["reason"] is None) or name in {
                        "owner",
                        "admin",
                    }
                # Only owner and admin may change it; others get 403 if they can see it.
                delete_expected = 401 if name == "visitor" else (403 if expected == 200 else 404)
                if name not in {"owner", "admin"}:
                    refused = await client.delete(f"/api/v1/media/{media_id}", headers=headers)
                    assert refused.status_code == delete_expected, (case, name, "delete")
            listed = {
                name: media_id
                in [
                    m["id"]
                    for m in (await (await client.get("/api/v1/media", headers=h)).get_json())[
                        "items"
                    ]
                ]
                for name, h in who.items()
            }
            listed_for = {n for n, yes in listed.items() if yes}
            assert listed_for == (
                {"owner", "other", "visitor", "admin"} if case == "public" else {"owner", "admin"}
            ), case


async def test_ranges_etag_and_cache_headers(app: QuartTrio, runtime: Runtime) -> None:
    owner_id, owner = await add_user(runtime.store, "owner")
    media_id = await make_media(runtime.store, runtime.site.content, owner_id, thumb=THUMB)
    url = f"/files/{media_id}/thumb"
    async with app.test_app() as test_app:
        client = test_app.test_client()
        whole = await client.get(url)
        assert whole.status_code == 200 and await whole.get_data() == THUMB
        etag = whole.headers["ETag"]
        assert etag == f'"{hashlib.sha256(THUMB).hexdigest()}"'
        assert "immutable" in whole.headers["Cache-Control"]
        assert whole.headers["Cache-Control"].startswith("public")
        assert whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["X-Content-Type-Options"] == "nosniff"

        part = await client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and await part.get_data() == THUMB[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(THUMB)}"
        suffix = await client.get(url, headers={"Range": "bytes=-300"})
        assert suffix.status_code == 206 and await suffix.get_data() == THUMB[-300:]
        tail = await client.get(url, headers={"Range": "bytes=10000-"})
        assert await tail.get_data() == THUMB[10000:]
        bad = await client.get(url, headers={"Range": f"bytes={len(THUMB)}-"})
        assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(THUMB)}"
        stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
        assert stale.status_code == 200 and await stale.get_data() == THUMB

        cached = await client.get(url, headers={"If-None-Match": etag})
        assert cached.status_code == 304 and await cached.get_data() == b""
        assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
        head = await client.head(url)
        assert head.status_code == 200 and await head.get_data() == b""  # length: e2e test
        original = await client.get(f"/files/{media_id}/original", headers=bearer(owner))
        assert "immutable" not in original.headers["Cache-Control"]
        assert original.headers["Content-Type"] == "image/jpeg"
        assert (await client.get(f"/files/{media_id}/nope")).status_code == 404


async def test_private_cache_control_and_x_accel_redirect(runtime: Runtime) -> None:
    owner_id, owner = await add_user(runtime.store, "owner")
    media_id = await make_media(runtime.store, runtime.site.content, owner_id, visibility="private")
    settings = dataclasses.replace(runtime.settings, x_accel_redirect="/_protected/")
    app = create_app(dataclasses.replace(runtime, settings=settings))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.get(f"/files/{media_id}/thumb")).status_code == 404
        response: Any = await client.get(f"/files/{media_id}/thumb", headers=bearer(owner))
        assert response.status_code == 200
        assert response.headers["X-Accel-Redirect"] == f"/_protected/media/{media_id}/thumb.bin"
        assert response.headers["Cache-Control"].startswith("private")
        assert await response.get_data() == b""


async def test_original_being_settled_is_still_served(app: QuartTrio, runtime: Runtime) -> None:
    """The settle moves queue/X to originals/X before its row changes at COMMIT."""
    owner_id, owner = await add_user(runtime.store, "owner")
    media_id = await make_media(runtime.store, runtime.site.content, owner_id)
    await runtime.store.write(
        lambda c: c.execute(
            "UPDATE files SET path = ? WHERE media_id = ? AND role = 'original'",
            (f"queue/{media_id}.jpg", media_id),
        )
    )  # the row still says queue/, the file already sits in originals/
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.get(f"/files/{media_id}/original", headers=bearer(owner))
        assert response.status_code == 200 and (await response.get_data())[:2] == b"\xff\xd8"
        await runtime.store.write(
            lambda c: c.execute("UPDATE files SET path = 'media/gone.bin' WHERE role = 'thumb'")
        )
        assert (await client.get(f"/files/{media_id}/thumb")).status_code == 404


async def test_originals_only_for_owner_and_admin_unless_public(
    app: QuartTrio, runtime: Runtime
) -> None:
    """Originals keep the camera's metadata, GPS included: visitors get only derived files."""
    owner_id, owner = await add_user(runtime.store, "owner")
    _, other = await add_user(runtime.store, "other")
    _, admin = await add_user(runtime.store, "admin", admin=True)
    media_id = await make_media(runtime.store, runtime.site.content, owner_id, thumb=THUMB)
    url = f"/files/{media_id}/original"
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for headers, expected in [
            ({}, 404),
            (bearer(other), 404),
            (bearer(owner), 200),
            (bearer(admin), 200),
        ]:
            assert (await client.get(url, headers=headers)).status_code == expected
            api = await (await client.get(f"/api/v1/media/{media_id}", headers=headers)).get_json()
            roles = {f["role"] for f in api["files"]}
            assert ("original" in roles) == (expected == 200)
            assert "thumb" in roles
    settings = dataclasses.replace(runtime.settings, public_originals=True)
    public_app = create_app(dataclasses.replace(runtime, settings=settings))
    async with public_app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.get(url)).status_code == 200

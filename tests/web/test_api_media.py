"""POST/GET/PATCH/DELETE /api/v1/media and retry, in process with the test client."""

from __future__ import annotations

import dataclasses
import errno
from typing import Any

import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime
from gremlin.web import bodies
from gremlin.web.app import create_app

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, make_media, multipart

MEDIA_KEYS = {
    "id",
    "kind",
    "state",
    "title",
    "owner",
    "visibility",
    "created",
    "files",
    "jobs",
    "reason",
}
FILE_KEYS = {"role", "url", "mime", "size", "sha256", "width", "height", "duration"}
JOB_KEYS = {"step", "state", "attempt", "max_attempts", "progress", "reason"}


async def post_media(client: Any, token: str, fields: dict[str, str], file: bytes | None) -> Any:
    body, ctype = multipart(fields, file)
    return await client.post(
        "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
    )


def incoming_files(runtime: Runtime) -> list[str]:
    return sorted(p.name for p in runtime.site.incoming.iterdir())


async def test_upload_commits_and_reads_back(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        fields = {"title": "Red square", "tags": "Red, square", "visibility": "unlisted"}
        response = await post_media(client, token, fields, jpeg_bytes())
        assert response.status_code == 201, await response.get_data()
        created = await response.get_json()
        assert set(created) == {"id", "state", "url"} and created["state"] == "processing"
        assert created["url"].endswith(f"/m/{created['id']}")

        got = await client.get(f"/api/v1/media/{created['id']}", headers=bearer(token))
        media = await got.get_json()
        assert set(media) == MEDIA_KEYS
        assert (media["title"], media["owner"], media["visibility"]) == (
            "Red square",
            "alice",
            "unlisted",
        )
        assert [f["role"] for f in media["files"]] == ["original"]
        assert set(media["files"][0]) == FILE_KEYS and media["files"][0]["mime"] == "image/jpeg"
        assert media["jobs"] and all(set(j) == JOB_KEYS for j in media["jobs"])
        assert media["created"].endswith("Z")
        # Not ready yet: a visitor does not see it.
        assert (await client.get(f"/api/v1/media/{created['id']}")).status_code == 404
    assert incoming_files(runtime) == []
    tags = await runtime.store.read(lambda c: [r[0] for r in c.execute("SELECT tag FROM tags")])
    assert sorted(tags) == ["red", "square"]


async def test_refusals_leave_nothing_behind(runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    small = dataclasses.replace(runtime.settings, max_upload_bytes=10_000)
    app = create_app(dataclasses.replace(runtime, settings=small))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        empty = await post_media(client, token, {}, b"")
        assert empty.status_code == 422
        text = await post_media(client, token, {}, b"just some text, not a picture\n" * 10)
        assert text.status_code == 415
        assert "image/jpeg" in (await text.get_json())["error"]["hint"]
        big = await post_media(client, token, {}, b"\xff\xd8\xff" + b"x" * 20_000)
        assert big.status_code == 413
        assert (await big.get_json())["error"]["code"] == "too_large"
        no_file = await post_media(client, token, {"title": "x"}, None)
        assert no_file.status_code == 400
        bad_vis = await post_media(client, token, {"visibility": "secret"}, jpeg_bytes())
        assert bad_vis.status_code == 400
        anonymous = await client.post("/api/v1/media", data=b"")
        assert anonymous.status_code == 401
    assert incoming_files(runtime) == []
    assert (
        await runtime.store.read(lambda c: c.execute("SELECT count(*) FROM media").fetchone()[0])
        == 0
    )


async def test_disk_full_is_507_and_partial_removed(
    app: QuartTrio, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await add_user(runtime.store, "alice")

    def full(fd: int, parts: list[bytes], digest: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bodies, "_write_all", full)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await post_media(client, token, {}, jpeg_bytes())
        assert response.status_code == 507
        assert (await response.get_json())["error"]["code"] == "disk_full"
        monkeypatch.undo()
        assert (await post_media(client, token, {}, jpeg_bytes())).status_code == 201
    assert incoming_files(runtime) == []


async def test_session_upload_needs_csrf_field_before_file(
    app: QuartTrio, runtime: Runtime
) -> None:
    from .test_auth import add_probe_routes, sign_in

    await add_user(runtime.store, "alice")
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await sign_in(client, "alice")
        csrf = (await (await client.get("/t/me")).get_json())["csrf"]
        body, ctype = multipart({"title": "x"}, jpeg_bytes())
        refused = await client.post("/api/v1/media", data=body, headers={"Content-Type": ctype})
        assert refused.status_code == 403
        assert (await refused.get_json())["error"]["code"] == "csrf"
        body, ctype = multipart({"csrf_token": csrf, "title": "x"}, jpeg_bytes())
        headers = {"Content-Type": ctype, "Accept": "text/html"}
        ok = await client.post("/api/v1/media", data=body, headers=headers)
        assert ok.status_code == 303 and ok.headers["Location"].startswith("/m/")
    assert incoming_files(runtime) == []
    assert (
        await runtime.store.read(lambda c: c.execute("SELECT count(*) FROM media").fetchone()[0])
        == 1
    )


async def test_maintenance_refuses_writes_with_retry_after(
    app: QuartTrio, runtime: Runtime
) -> None:
    _, token = await add_user(runtime.store, "alice")
    runtime.mode = Mode.MAINTENANCE
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await post_media(client, token, {}, jpeg_bytes())
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert (await response.get_json())["error"]["code"] == "maintenance"
        listed = await client.get("/api/v1/media", headers=bearer(token))
        assert listed.status_code == 200


async def test_list_filters_and_cursor_paging(app: QuartTrio, runtime: Runtime) -> None:
    alice, token = await add_user(runtime.store, "alice")
    bob, _ = await add_user(runtime.store, "bob")
    content = runtime.site.content
    ids = [await make_media(runtime.store, content, alice, created_at=1000 + i) for i in range(5)]
    hidden = await make_media(runtime.store, content, bob, visibility="unlisted")
    bobs = await make_media(runtime.store, content, bob, created_at=2000)
    mine = await make_media(runtime.store, content, alice, visibility="private")
    await runtime.store.write(lambda c: c.execute("INSERT INTO tags VALUES (?, 'cats')", (ids[1],)))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        seen: list[str] = []
        url = "/api/v1/media?limit=2"
        while url:
            page = await (await client.get(url)).get_json()
            seen += [m["id"] for m in page["items"]]
            url = f"/api/v1/media?limit=2&cursor={page['next']}" if page["next"] else ""
        assert seen == [bobs, *reversed(ids)]  # newest first; no unlisted, no private
        assert hidden not in seen and mine not in seen
        by_owner = await (await client.get("/api/v1/media?owner=bob")).get_json()
        assert [m["id"] for m in by_owner["items"]] == [bobs]
        tagged = await (await client.get("/api/v1/media?tag=Cats")).get_json()
        assert [m["id"] for m in tagged["items"]] == [ids[1]]
        own = await (
            await client.get("/api/v1/media?owner=alice", headers=bearer(token))
        ).get_json()
        assert mine in [m["id"] for m in own["items"]]
        assert (await client.get("/api/v1/media?state=stuck")).status_code == 400
        assert (await client.get("/api/v1/media?limit=0")).status_code == 400
        assert (await client.get("/api/v1/media?cursor=garbage")).status_code == 400


async def test_edit_delete_and_retry(app: QuartTrio, runtime: Runtime) -> None:
    alice, token = await add_user(runtime.store, "alice")
    _, other = await add_user(runtime.store, "bob")
    _, admin = await add_user(runtime.store, "root", admin=True)
    content = runtime.site.content
    media_id = await make_media(runtime.store, content, alice)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        patch = {"title": "New title", "tags": ["a", "b"], "visibility": "private"}
        edited = await client.patch(f"/api/v1/media/{media_id}", json=patch, headers=bearer(token))
        assert edited.status_code == 200, await edited.get_data()
        body = await edited.get_json()
        assert (body["title"], body["visibility"]) == ("New title", "private")
        assert (
            await client.patch(
                f"/api/v1/media/{media_id}", json={"owner": "x"}, headers=bearer(token)
            )
        ).status_code == 400
        # bob may not even see it now that it is private
        assert (
            await client.delete(f"/api/v1/media/{media_id}", headers=bearer(other))
        ).status_code == 404

        failed = await runtime.store.write(
            lambda c: (
                c.execute(
                    "INSERT INTO jobs (media_id, step, input_path, output_path, state, attempt,"
                    " max_attempts, reason, created_at) VALUES (?, 'derive', 'x', 'y', 'failed',"
                    " 3, 3, 'broke', 0)",
                    (media_id,),
                ).lastrowid
            )
        )
        await runtime.store.write(
            lambda c: c.execute(
                "UPDATE media SET state = 'failed', reason = 'broke' WHERE id = ?", (media_id,)
            )
        )
        retried = await client.post(f"/api/v1/media/{media_id}/retry", headers=bearer(admin))
        assert retried.status_code == 200, await retried.get_data()
        assert (await retried.get_json())["state"] == "processing"
        job = await runtime.store.read(
            lambda c: dict(c.execute("SELECT * FROM jobs WHERE id = ?", (failed,)).fetchone())
        )
        assert job["state"] == "queued"
        again = await client.post(f"/api/v1/media/{media_id}/retry", headers=bearer(token))
        assert again.status_code == 409

        gone = await client.delete(f"/api/v1/media/{media_id}", headers=bearer(token))
        assert gone.status_code == 204
        assert (
            await client.get(f"/api/v1/media/{media_id}", headers=bearer(token))
        ).status_code == 404
    assert not (content / "media" / media_id).exists()
    assert not (content / f"originals/{media_id}.jpg").exists()
    assert (
        await runtime.store.read(lambda c: c.execute("SELECT count(*) FROM files").fetchone()[0])
        == 0
    )

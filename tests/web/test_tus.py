"""The tus endpoint in process: protocol rules, exactly-once commit, crash reconciliation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import trio
from quart_trio import QuartTrio

from gremlin.media.commit import commit_upload
from gremlin.runtime import Runtime
from gremlin.web import tus

from .conftest import add_user, bearer
from .helpers import jpeg_bytes

TUS = {"Tus-Resumable": "1.0.0"}


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(client: Any, token: str, length: int, **metadata: str) -> Any:
    headers = {**TUS, **bearer(token), "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = meta(**metadata)
    return await client.post("/api/v1/uploads", headers=headers)


async def patch(client: Any, token: str, url: str, offset: int, data: bytes) -> Any:
    headers = {
        **TUS,
        **bearer(token),
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    return await client.patch(url, data=data, headers=headers)


def path_of(location: str) -> str:
    return location[location.index("/api/v1/uploads/") :]


async def media_count(runtime: Runtime) -> int:
    return await runtime.store.read(lambda c: c.execute("SELECT count(*) FROM media").fetchone()[0])


def test_metadata_parsing() -> None:
    assert tus.parse_metadata(meta(filename="a b.jpg", title="Été")) == {
        "filename": "a b.jpg",
        "title": "Été",
    }
    assert tus.parse_metadata("flag") == {"flag": ""}
    for bad in ("x !!!", "x YQ==,x YQ==", "x YQ== extra"):
        with pytest.raises(tus.BadRequest):
            tus.parse_metadata(bad)


async def test_options_and_version_check(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        options = await client.options("/api/v1/uploads")
        assert options.status_code == 204
        assert options.headers["Tus-Version"] == "1.0.0"
        assert options.headers["Tus-Extension"] == "creation,termination"
        assert int(options.headers["Tus-Max-Size"]) == runtime.settings.max_upload_bytes
        wrong = await client.post(
            "/api/v1/uploads",
            headers={**bearer(token), "Tus-Resumable": "0.2.2", "Upload-Length": "5"},
        )
        assert wrong.status_code == 412 and wrong.headers["Tus-Version"] == "1.0.0"
        anonymous = await client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "5"})
        assert anonymous.status_code == 401
        assert (await create(client, token, 0)).status_code == 422
        too_big = await create(client, token, runtime.settings.max_upload_bytes + 1)
        assert too_big.status_code == 413


async def test_upload_in_chunks_commits_exactly_once(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    _, other = await add_user(runtime.store, "bob")
    data = jpeg_bytes((300, 200))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        made = await create(client, token, len(data), filename="cat.jpg", title="A cat", tags="x,y")
        assert made.status_code == 201 and made.headers["Tus-Resumable"] == "1.0.0"
        url = path_of(made.headers["Location"])

        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Upload-Offset"] == "0"
        assert head.headers["Upload-Length"] == str(len(data))
        assert head.headers["Cache-Control"] == "no-store"
        assert (await client.head(url, headers={**TUS, **bearer(other)})).status_code == 404

        wrong_type = await client.patch(
            url, data=b"x", headers={**TUS, **bearer(token), "Upload-Offset": "0"}
        )
        assert wrong_type.status_code == 415
        first = await patch(client, token, url, 0, data[:1000])
        assert first.status_code == 204 and first.headers["Upload-Offset"] == "1000"
        assert "Gremlin-Media-Id" not in first.headers
        conflict = await patch(client, token, url, 500, data[500:1000])
        assert conflict.status_code == 409
        last = await patch(client, token, url, 1000, data[1000:])
        assert last.status_code == 204, await last.get_data()
        media_id = last.headers["Gremlin-Media-Id"]
        assert last.headers["Upload-Offset"] == str(len(data))

        # A retried final PATCH (the client never saw our 204) answers the same media.
        again = await patch(client, token, url, 1000, data[1000:])
        assert again.status_code == 409  # not the end: the client asks HEAD first
        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Gremlin-Media-Id"] == media_id
        assert head.headers["Upload-Offset"] == str(len(data))
        replay = await patch(client, token, url, len(data), b"")
        assert replay.status_code == 204 and replay.headers["Gremlin-Media-Id"] == media_id

        got = await (
            await client.get(f"/api/v1/media/{media_id}", headers=bearer(token))
        ).get_json()
        assert got["title"] == "A cat" and got["files"][0]["size"] == len(data)
    assert await media_count(runtime) == 1
    leftovers = sorted(p.suffix for p in runtime.site.incoming.iterdir())
    assert leftovers == [".json"]  # the record of the commit; the bytes moved to queue/


async def test_termination_and_refused_content(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        url = path_of((await create(client, token, 100)).headers["Location"])
        await patch(client, token, url, 0, b"a" * 40)
        gone = await client.delete(url, headers={**TUS, **bearer(token)})
        assert gone.status_code == 204
        assert (await client.head(url, headers={**TUS, **bearer(token)})).status_code == 404
        assert list(runtime.site.incoming.iterdir()) == []

        text = b"plain text is not a media type\n" * 4
        url = path_of((await create(client, token, len(text))).headers["Location"])
        refused = await patch(client, token, url, 0, text)
        assert refused.status_code == 415
        assert (await client.head(url, headers={**TUS, **bearer(token)})).status_code == 404
        assert list(runtime.site.incoming.iterdir()) == []
        over = path_of((await create(client, token, 10)).headers["Location"])
        assert (await patch(client, token, over, 0, b"x" * 11)).status_code == 413
    assert await media_count(runtime) == 0


async def test_complete_but_uncommitted_upload_is_reconciled(
    app: QuartTrio, runtime: Runtime
) -> None:
    """As after a crash between the last fsync and the commit, or after the commit's
    transaction but before its media id reached the upload's JSON."""
    alice, token = await add_user(runtime.store, "alice")
    data = jpeg_bytes()
    incoming = runtime.site.incoming
    async with app.test_app() as test_app:
        client = test_app.test_client()
        # 1. all bytes on disk, no commit: the last byte is dropped and re-sent.
        url = path_of((await create(client, token, len(data))).headers["Location"])
        upload_id = url.rsplit("/", 1)[1]
        tus.paths(incoming, upload_id).bin.write_bytes(data)
        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Upload-Offset"] == str(len(data) - 1)
        done = await patch(client, token, url, len(data) - 1, data[-1:])
        assert done.status_code == 204 and done.headers["Gremlin-Media-Id"]
        assert await media_count(runtime) == 1

        # 2. the commit transaction landed, the JSON never heard: found, not committed again.
        url = path_of((await create(client, token, len(data))).headers["Location"])
        upload_id = url.rsplit("/", 1)[1]
        paths = tus.paths(incoming, upload_id)
        paths.bin.write_bytes(data)
        staged = tus.link_for_commit(incoming, upload_id)
        committed = await commit_upload(
            runtime.store,
            runtime.settings,
            owner_id=alice,
            staged=staged,
            original_name="x.jpg",
            on_commit=tus.record_commit(upload_id),
        )
        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Gremlin-Media-Id"] == committed.media_id
        assert head.headers["Upload-Offset"] == str(len(data))
        assert not await trio.Path(paths.bin).exists()
    assert await media_count(runtime) == 2
    keys = await runtime.store.read(lambda c: [r[0] for r in c.execute("SELECT key FROM meta")])
    assert not [k for k in keys if k.startswith("tus_upload:")]  # forgotten once recorded


async def test_session_uploads_need_the_csrf_header(app: QuartTrio, runtime: Runtime) -> None:
    from .test_auth import add_probe_routes, sign_in

    await add_user(runtime.store, "alice")
    add_probe_routes(app)
    data = jpeg_bytes()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await sign_in(client, "alice")
        csrf = {"X-CSRF-Token": (await (await client.get("/t/me")).get_json())["csrf"]}
        headers = {**TUS, "Upload-Length": str(len(data))}
        refused = await client.post("/api/v1/uploads", headers=headers)
        assert refused.status_code == 403
        made = await client.post("/api/v1/uploads", headers={**headers, **csrf})
        assert made.status_code == 201
        url = path_of(made.headers["Location"])
        body = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        assert (await client.patch(url, data=data, headers=body)).status_code == 403
        done = await client.patch(url, data=data, headers={**body, **csrf})
        assert done.status_code == 204 and done.headers["Gremlin-Media-Id"]


async def test_maintenance_pauses_uploads_and_resume_commits(
    app: QuartTrio, runtime: Runtime
) -> None:
    from gremlin.runtime import Mode

    _, token = await add_user(runtime.store, "alice")
    data = jpeg_bytes()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        url = path_of((await create(client, token, len(data))).headers["Location"])
        await patch(client, token, url, 0, data[:100])
        runtime.mode = Mode.MAINTENANCE
        paused = await patch(client, token, url, 100, data[100:])
        assert paused.status_code == 503 and paused.headers["Retry-After"]
        assert (await create(client, token, 10)).status_code == 503
        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Upload-Offset"] == "100"  # reads go on
        runtime.mode = Mode.NORMAL
        done = await patch(client, token, url, 100, data[100:])
        assert done.status_code == 204 and done.headers["Gremlin-Media-Id"]
    assert await media_count(runtime) == 1

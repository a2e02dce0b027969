"""The no-JavaScript upload form, the upload page, and the API token page."""

from __future__ import annotations

import re

from quart_trio import QuartTrio

from gremlin.runtime import Runtime

from .conftest import add_user
from .helpers import jpeg_bytes, multipart
from .pageclient import csrf_from, post_form, signed_in, text_of


async def test_plain_form_upload_commits_and_shows_the_media(
    app: QuartTrio, runtime: Runtime
) -> None:
    await add_user(runtime.store, "ann")
    async with app.test_app() as test_app:
        client = await signed_in(test_app, "ann")
        page = await text_of(await client.get("/upload"))
        assert 'enctype="multipart/form-data"' in page and "uploader.js" in page
        assert '<meta name="csrf-token"' in page
        token = await csrf_from(client, "/upload")
        fields = {"csrf_token": token, "title": "From the form", "tags": "a, b"}
        body, ctype = multipart({**fields, "visibility": "unlisted"}, jpeg_bytes())
        r = await client.post("/upload", data=body, headers={"Content-Type": ctype})
        assert r.status_code == 303, await text_of(r)
        media_id = re.match(r"^/m/([^?]+)\?done=uploaded$", r.headers["Location"]).group(1)  # type: ignore[union-attr]
        page = await text_of(await client.get(r.headers["Location"]))
        assert "From the form" in page and "Processing will" not in page
        assert "Uploaded. Processing has started" in page
        # Without the form's token, the streamed upload is refused before any byte is kept.
        body, ctype = multipart({"title": "forged"}, jpeg_bytes())
        r = await client.post("/upload", data=body, headers={"Content-Type": ctype})
        assert r.status_code == 403
    row = await runtime.store.read(
        lambda c: c.execute("SELECT id, title, visibility FROM media").fetchall()
    )
    assert [tuple(x) for x in row] == [(media_id, "From the form", "unlisted")]
    tags = await runtime.store.read(
        lambda c: [t[0] for t in c.execute("SELECT tag FROM tags ORDER BY tag")]
    )
    assert tags == ["a", "b"]


async def test_api_tokens_created_used_and_revoked(app: QuartTrio, runtime: Runtime) -> None:
    await add_user(runtime.store, "ann")
    client = await signed_in(app, "ann")
    r = await post_form(client, "/account/tokens", {"label": "backup"}, "/account/tokens")
    assert r.status_code == 201
    page = await text_of(r)
    token = re.search(r'<pre class="log" id="new-token">(gt_[^<]+)</pre>', page).group(1)  # type: ignore[union-attr]
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/v1/media", headers=auth)).status_code == 200
    # The token is never shown again.
    listing = await text_of(await client.get("/account/tokens"))
    assert token not in listing and "backup" in listing
    token_id = await runtime.store.read(
        lambda c: c.execute("SELECT id FROM tokens WHERE label = 'backup'").fetchone()[0]
    )
    # Another member cannot revoke it.
    await add_user(runtime.store, "bob")
    bob = await signed_in(app, "bob")
    r = await post_form(bob, f"/account/tokens/{token_id}/revoke", {})
    assert r.status_code == 404
    assert (await api.get("/api/v1/media", headers=auth)).status_code == 200
    r = await post_form(client, f"/account/tokens/{token_id}/revoke", {})
    assert r.status_code == 303
    assert (await api.get("/api/v1/media", headers=auth)).status_code == 401

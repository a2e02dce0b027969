"""Every tag link on a media page works: a tag is a path part of /tag/<tag>, so '/' and '\\'
inside it become '-' and tags of only dots are dropped, on upload and on edit."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

from quart_trio import QuartTrio

from gremlin.media.commit import normalise_tags
from gremlin.runtime import Runtime

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, multipart
from .pageclient import csrf_from, signed_in, text_of
from .pagedata import media

TAG_LINK = re.compile(r'<a href="(/tag/[^"]*)">#')
HOSTILE = "cats/dogs, .., ., ..., back\\slash, ／wide, ok"
ATOM = "{http://www.w3.org/2005/Atom}"
EXPECTED = ["-wide", "back-slash", "cats-dogs", "ok"]


async def stored_tags(runtime: Runtime) -> list[str]:
    return await runtime.store.read(
        lambda c: sorted(r[0] for r in c.execute("SELECT tag FROM tags"))
    )


async def tag_links_work(client: Any, media_id: str, headers: dict[str, str]) -> list[str]:
    page = await text_of(await client.get(f"/m/{media_id}", headers=headers))
    links = TAG_LINK.findall(page)
    for link in links:
        r = await client.get(link, headers=headers)
        assert r.status_code == 200, (link, r.status_code)
    return links


async def test_tags_from_an_upload_and_an_edit_link_to_working_pages(
    app: QuartTrio, runtime: Runtime
) -> None:
    _, token = await add_user(runtime.store, "ann")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        body, ctype = multipart({"title": "Pets", "tags": HOSTILE}, jpeg_bytes())
        r = await client.post(
            "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
        )
        assert r.status_code == 201, await r.get_data()
        media_id = (await r.get_json())["id"]
        assert await stored_tags(runtime) == EXPECTED
        links = await tag_links_work(client, media_id, bearer(token))
        assert sorted(links) == sorted(f"/tag/{t}" for t in EXPECTED)

        browser = await signed_in(test_app, "ann")
        token_field = await csrf_from(browser, f"/m/{media_id}/edit")
        form = {"title": "Pets", "tags": "a/b\\c, ..", "visibility": "public"}
        r = await browser.post(f"/m/{media_id}/edit", form={**form, "csrf_token": token_field})
        assert r.status_code == 303
        assert await stored_tags(runtime) == ["a-b-c"]
        assert await tag_links_work(browser, media_id, {}) == ["/tag/a-b-c"]

        r = await client.patch(
            f"/api/v1/media/{media_id}", json={"tags": ["x/y", "."]}, headers=bearer(token)
        )
        assert r.status_code == 200, await r.get_data()
        assert await stored_tags(runtime) == ["x-y"]


def test_normalise_tags_keeps_the_rest() -> None:
    assert normalise_tags("a, B ,a,,c") == ("a", "b", "c")
    assert normalise_tags(["v1.0", "...x", "Ünïcode  Tag", "a/b", "a-b"]) == (
        "v1.0",
        "...x",
        "ünïcode tag",
        "a-b",
    )
    assert normalise_tags("." * 64 + "x") == ()  # only dots once cut to 64 characters
    assert normalise_tags(["/"]) == ("-",)


async def test_a_tag_feed_links_to_its_own_pages(app: QuartTrio, runtime: Runtime) -> None:
    """A tag may hold '#', '?' or spaces: the feed's links must quote them as the pages do."""
    uid, _ = await add_user(runtime.store, "ann")
    await media(runtime.store, uid, title="Notes", tags=("c# tips?",))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        page = await text_of(await client.get("/"))
        (link,) = TAG_LINK.findall(page)
        assert (await client.get(link)).status_code == 200
        feed = ET.fromstring(await text_of(await client.get(f"{link}/feed.atom")))
        hrefs = {e.get("rel"): e.get("href") for e in feed.findall(f"{ATOM}link")}
        assert urlsplit(hrefs["alternate"]).path == link
        assert urlsplit(hrefs["self"]).path == f"{link}/feed.atom"
        for href in hrefs.values():
            assert "#" not in href and "?" not in href and " " not in href, href
            r = await client.get(urlsplit(href).path)
            assert r.status_code == 200, href

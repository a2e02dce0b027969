"""Requests a site meets in the wild, found by driving a real server as visitors, members and
an admin would: wrong methods, wrong tokens on pages, crafted `next` targets, odd numbers."""

from __future__ import annotations

import functools
import threading
import time
import xml.etree.ElementTree as ET

import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Runtime

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, multipart
from .pageclient import csrf_from, post_form, signed_in, text_of
from .pagedata import insert_media


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/"), ("DELETE", "/feed.atom"), ("POST", "/healthz"), ("PATCH", "/signin")],
)
async def test_a_method_a_route_does_not_take_is_a_405_not_a_csrf_refusal(
    app: QuartTrio, method: str, path: str
) -> None:
    response = await app.test_client().open(path, method=method)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


async def test_a_wrong_bearer_token_on_a_page_is_a_401_page_not_a_500(
    app: QuartTrio, runtime: Runtime
) -> None:
    owner_id, _ = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    client = app.test_client()
    headers = {**bearer("wrong"), "Accept": "text/html"}
    for path in ("/", "/u/ann", f"/m/{media_id}", "/signin", "/upload"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert "API token is not valid" in await text_of(response)
    response = await client.get("/no-such-page", headers=headers)
    assert response.status_code == 404


async def test_og_description_is_escaped_once(app: QuartTrio, runtime: Runtime) -> None:
    owner_id, _ = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(
        functools.partial(insert_media, description="Fish & chips <3, **fried**"), owner_id
    )
    page = await text_of(await app.test_client().get(f"/m/{media_id}"))
    assert '<meta property="og:description" content="Fish &amp; chips &lt;3, fried">' in page


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\x00/x"])
async def test_sign_in_never_redirects_to_a_crafted_next(
    app: QuartTrio, runtime: Runtime, target: str
) -> None:
    """Browsers drop tabs and newlines from a Location: `/\\t/evil` would become `//evil`."""
    await add_user(runtime.store, "ann")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        token = await csrf_from(client)
        form = {"name": "ann", "password": "correct horse battery", "csrf_token": token}
        response = await client.post("/signin", form={**form, "next": target})
        assert response.status_code == 303
        assert response.headers["Location"] == "/?done=signed_in"
        response = await client.get("/signin", query_string={"next": target})
        assert response.status_code == 303
        assert response.headers["Location"] == "/"


@pytest.mark.parametrize("quota", ["inf", "1e300", "-inf"])
async def test_an_absurd_quota_is_a_400(app: QuartTrio, runtime: Runtime, quota: str) -> None:
    await add_user(runtime.store, "root", admin=True)
    member_id, _ = await add_user(runtime.store, "ann")
    async with app.test_app() as test_app:
        client = await signed_in(test_app, "root")
        response = await post_form(
            client, f"/admin/users/{member_id}/quota", {"quota_mib": quota}, "/admin"
        )
        assert response.status_code == 400
        assert "quota" in await text_of(response)


async def test_api_edit_asks_who_is_asking_before_reading_the_body(
    app: QuartTrio, runtime: Runtime
) -> None:
    owner_id, _ = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    response = await app.test_client().patch(f"/api/v1/media/{media_id}", data=b"not json")
    assert response.status_code == 401


async def test_api_edit_refuses_a_lone_surrogate_with_a_400(
    app: QuartTrio, runtime: Runtime
) -> None:
    owner_id, token = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    response = await app.test_client().patch(
        f"/api/v1/media/{media_id}", data=b'{"title": "a\\ud800b"}', headers=bearer(token)
    )
    assert response.status_code == 400
    assert "Unicode" in (await response.get_json())["error"]["message"]


async def test_edited_text_loses_its_control_characters(app: QuartTrio, runtime: Runtime) -> None:
    owner_id, token = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    patch = {"title": "a\x00b\x1b[31m", "license": "CC\x07", "description": "one\x00\ntwo\tthree"}
    response = await app.test_client().patch(
        f"/api/v1/media/{media_id}", json=patch, headers=bearer(token)
    )
    assert response.status_code == 200
    row = await runtime.store.read(
        lambda c: c.execute(
            "SELECT title, license, description FROM media WHERE id = ?", (media_id,)
        ).fetchone()
    )
    assert tuple(row) == ("ab[31m", "CC", "one\ntwo\tthree")


async def test_uploaded_text_loses_its_control_characters(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "ann")
    fields = {"title": "a\x00b\x1b[31m", "description": "d\x00\ne", "license": "L\x07"}
    body, ctype = multipart(fields, jpeg_bytes())
    response = await app.test_client().post(
        "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
    )
    assert response.status_code == 201, await response.get_data()
    row = await runtime.store.read(
        lambda c: c.execute("SELECT title, description, license FROM media").fetchone()
    )
    assert tuple(row) == ("ab[31m", "d\ne", "L")


async def test_feeds_stay_well_formed_xml_whatever_the_titles_hold(
    app: QuartTrio, runtime: Runtime
) -> None:
    """XML 1.0 has no place for most control characters: one in a title (older rows, imports)
    made the whole feed unreadable to every feed reader."""
    owner_id, _ = await add_user(runtime.store, "ann")
    await runtime.store.write(
        functools.partial(insert_media, title="a\x1bb\x00", description="d\x0c", tags=("t",)),
        owner_id,
    )
    client = app.test_client()
    for path in ("/feed.atom", "/u/ann/feed.atom", "/tag/t/feed.atom", "/tag/%1B/feed.atom"):
        response = await client.get(path)
        assert response.status_code == 200, path
        feed = ET.fromstring(await response.get_data())
        assert feed.tag.endswith("feed"), path
    titles = [e.text for e in feed.iter() if e.tag.endswith("title")]  # the last: the tag's
    assert titles == ["# · contentgremlin"]


async def test_a_good_sign_in_does_not_wipe_the_address_s_failures(
    app: QuartTrio, runtime: Runtime
) -> None:
    """Else a member could guess others' passwords without end, signing in as themselves
    after every few guesses."""
    await add_user(runtime.store, "ann")
    await add_user(runtime.store, "mallory")
    limit = runtime.settings.signin_attempts_per_minute

    async def attempt(name: str, password: str) -> int:
        client = test_app.test_client()
        token = await csrf_from(client)
        form = {"name": name, "password": password, "csrf_token": token}
        return int((await client.post("/signin", form=form)).status_code)

    async with app.test_app() as test_app:
        for _ in range(limit - 1):
            assert await attempt("ann", "guess guess") == 401
        assert await attempt("mallory", "correct horse battery") == 303
        assert await attempt("ann", "guess guess") == 401
        assert await attempt("ann", "another guess") == 429


async def test_another_members_collection_does_not_list_unlisted_media(
    app: QuartTrio, runtime: Runtime
) -> None:
    """Unlisted media is listed only to its owner and admins: a member who has its link must
    not publish it by putting it in a collection of theirs. Its owner may, in their own."""
    from .pagedata import media

    store = runtime.store
    ann_id, _ = await add_user(store, "ann")
    await add_user(store, "bob")
    await add_user(store, "root", admin=True)
    unlisted = await media(store, ann_id, title="Shared by link", visibility="unlisted")
    for name in ("bob", "ann"):
        member = await signed_in(app, name)
        assert (await post_form(member, "/collections", {"title": "Picks"})).status_code == 303
        cid = await store.read(
            lambda c, n=name: c.execute(
                "SELECT c.id FROM collections c JOIN users u ON u.id = c.owner_id WHERE u.name = ?",
                (n,),
            ).fetchone()[0]
        )
        form = {"collection_id": str(cid), "media_id": unlisted}
        assert (await post_form(member, "/collections/add", form)).status_code == 303
    visitor, root = app.test_client(), await signed_in(app, "root")
    bob, ann = await signed_in(app, "bob"), await signed_in(app, "ann")
    assert "Shared by link" not in await text_of(await visitor.get("/u/bob/c/picks"))
    for client in (bob, ann, root):  # bob has the link; ann owns it; admins see all
        assert "Shared by link" in await text_of(await client.get("/u/bob/c/picks"))
    assert "Shared by link" in await text_of(await visitor.get("/u/ann/c/picks"))


async def test_a_static_name_too_long_for_the_filesystem_is_a_404(app: QuartTrio) -> None:
    response = await app.test_client().get("/static/" + "x" * 3000)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/collections/99999999999999999999999/delete",
        "/account/tokens/99999999999999999999999/revoke",
        "/admin/users/99999999999999999999999",
    ],
)
async def test_an_id_beyond_sqlite_integers_is_a_404(
    app: QuartTrio, runtime: Runtime, path: str
) -> None:
    await add_user(runtime.store, "root", admin=True)
    async with app.test_app() as test_app:
        client = await signed_in(test_app, "root")
        response = await post_form(client, path, {"action": "disable"})
        assert response.status_code == 404


async def test_a_collection_id_beyond_sqlite_integers_is_a_400(
    app: QuartTrio, runtime: Runtime
) -> None:
    owner_id, _ = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    async with app.test_app() as test_app:
        client = await signed_in(test_app, "ann")
        form = {"collection_id": "99999999999999999999999", "media_id": media_id}
        response = await post_form(client, "/collections/add", form)
        assert response.status_code == 400


@pytest.mark.parametrize("body", [b"\xff\xfe\xff", b"\xc3(", b"{", b"1e999999"])
async def test_api_edit_answers_400_to_a_body_that_is_not_json(
    app: QuartTrio, runtime: Runtime, body: bytes
) -> None:
    owner_id, token = await add_user(runtime.store, "ann")
    media_id = await runtime.store.write(insert_media, owner_id)
    headers = {**bearer(token), "Content-Type": "application/json"}
    response = await app.test_client().patch(
        f"/api/v1/media/{media_id}", data=body, headers=headers
    )
    assert response.status_code == 400


async def test_a_tag_typed_in_capitals_leads_to_its_page(app: QuartTrio, runtime: Runtime) -> None:
    """Tags are stored lowercased (and NFKC-normalised): /tag/Cats must find the cats."""
    owner_id, _ = await add_user(runtime.store, "ann")
    await runtime.store.write(functools.partial(insert_media, tags=("cats",)), owner_id)
    client = app.test_client()
    moves = (("/tag/Cats", "/tag/cats"), ("/tag/CATS/feed.atom", "/tag/cats/feed.atom"))
    for path, target in moves:
        response = await client.get(path)
        assert response.status_code == 301, path
        assert response.headers["Location"] == target
    assert (await client.get("/tag/cats")).status_code == 200


def test_markdown_that_would_take_a_minute_is_shown_as_plain_text() -> None:
    """Python-Markdown's inline patterns are quadratic in a paragraph's brackets: 20,000
    characters of "![" (a description) took 58 s of the page's thread."""
    from gremlin.web import render

    hostile = "![" * 10_000
    started = time.monotonic()
    html = str(render.safe_markdown(hostile))
    summary = render.plain_summary(hostile + "\n\nmore")
    assert time.monotonic() - started < 5
    assert html == f"<p>{hostile}</p>"
    assert summary.startswith("![![")
    usual = "A [link](https://example.org) and *words*.\n\n" * 40
    assert str(render.safe_markdown(usual)).count('<a href="https://example.org"') == 40


async def test_markdown_is_rendered_off_the_event_loop(
    app: QuartTrio, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long list or many rules still take seconds of Markdown's CPU (20,000 characters of
    "- " items: 5 s); the thread serving every other request must not spend them."""
    from gremlin.web import render

    threads: list[str] = []
    convert = render._markdown_to_html

    def recorded(text: str) -> str:
        threads.append(threading.current_thread().name)
        return convert(text)

    monkeypatch.setattr(render, "_markdown_to_html", recorded)
    owner_id, token = await add_user(runtime.store, "ann")
    description = f"Unique {time.time_ns()}\n\n- one\n- two"
    media_id = await runtime.store.write(
        functools.partial(insert_media, description=description), owner_id
    )
    client = app.test_client()
    assert (await client.get(f"/m/{media_id}")).status_code == 200
    assert (await client.get("/feed.atom")).status_code == 200
    assert threads and threading.main_thread().name not in threads

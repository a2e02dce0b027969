"""HTML pages in process: browsing, the media page, visibility, editing, XSS, CSRF."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime
from gremlin.store import Store

from .conftest import add_user
from .pageclient import CSRF_RE, csrf_from, signed_in, text_of
from .pagedata import insert_job, media


async def test_home_lists_only_public_ready_media(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    shown = await media(store, uid, title="Sunny beach")
    await media(store, uid, title="Secret plan", visibility="private")
    await media(store, uid, title="Link only", visibility="unlisted")
    await media(store, uid, title="Still cooking", state="processing")
    page = await text_of(await app.test_client().get("/"))
    assert "Sunny beach" in page and f"/m/{shown}" in page
    for hidden in ("Secret plan", "Link only", "Still cooking"):
        assert hidden not in page
    img = re.search(r"<img [^>]*/files/" + shown + r"/thumb[^>]*>", page)
    assert img, page
    assert 'loading="lazy"' in img.group(0)
    assert 'width="360"' in img.group(0) and 'height="270"' in img.group(0)


async def test_media_page_shows_sized_image_details_and_markdown(
    app: QuartTrio, store: Store
) -> None:
    uid, ann = await add_user(store, "ann")
    mid = await media(
        store,
        uid,
        title="Harbour",
        description="A *calm* evening.\n\n- boats\n- gulls",
        tags=("sea", "evening"),
        exif={"Model": "X100V", "FNumber": 2.8, "ExposureTime": 0.004, "ISOSpeedRatings": 160},
    )
    r = await app.test_client().get(f"/m/{mid}")
    assert r.status_code == 200
    page = await text_of(r)
    assert f'src="/files/{mid}/medium"' in page and 'width="1280"' in page
    # The larger one is the original, which keeps its GPS: the owner's, not a visitor's.
    assert f"/files/{mid}/original" not in page
    owners = await text_of(
        await app.test_client().get(f"/m/{mid}", headers={"Authorization": f"Bearer {ann}"})
    )
    assert f'href="/files/{mid}/original"' in owners
    assert "<em>calm</em>" in page and "<li>boats</li>" in page
    assert 'href="/tag/sea"' in page
    assert "X100V" in page and "f/2.8" in page and "1/250 s" in page
    assert '<meta property="og:title" content="Harbour">' in page
    assert f'<meta property="og:image" content="http://localhost/files/{mid}/medium">' in page
    assert "application/json+oembed" in page


class ActiveContent(HTMLParser):
    """Collects what a browser would run: script elements, on* handlers, javascript: URLs,
    and elements that should never come from user input."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ours = tag == "script" and (dict(attrs).get("src") or "").startswith("/static/")
        if tag in ("script", "iframe", "object", "embed", "b") and not ours:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript"):
                self.found.append(f"{tag} {name}={value}")


def active_content(html: str) -> list[str]:
    parser = ActiveContent()
    parser.feed(html)
    return parser.found


async def test_title_and_description_render_escaped(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "mallory")
    payload = '<script>alert("t")</script>"><img src=x onerror=alert(1)>'
    description = (
        '<script>alert("d")</script>\n\n<img src=x onerror="alert(2)">\n\n'
        '[click](javascript:alert(3)) <a href="#" onclick="alert(4)">x</a>'
    )
    mid = await media(store, uid, title=payload, description=description, tags=("<b>t</b>",))
    for path in (f"/m/{mid}", "/", "/u/mallory", "/tag/%3Cb%3Et%3C%2Fb%3E"):
        page = await text_of(await app.test_client().get(path))
        assert active_content(page) == [], path
        assert "<script>alert" not in page, path
    page = await text_of(await app.test_client().get(f"/m/{mid}"))
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in page
    # In the feed, each entry's HTML content is as safe once the XML is decoded.
    feed = ET.fromstring(await (await app.test_client().get("/feed.atom")).get_data())
    contents = [e.text or "" for e in feed.iter("{http://www.w3.org/2005/Atom}content")]
    assert contents and all(active_content(c) == [] for c in contents)
    oembed = await (await app.test_client().get(f"/oembed?url=http://x/m/{mid}")).get_json()
    assert active_content(oembed.get("html", "")) == []


async def test_form_post_without_csrf_token_is_refused(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, title="Before")
    client = await signed_in(app, "ann")
    r = await client.post(f"/m/{mid}/edit", form={"title": "After", "visibility": "public"})
    assert r.status_code == 403
    r = await client.post(
        f"/m/{mid}/edit", form={"title": "After", "visibility": "public", "csrf_token": "forged"}
    )
    assert r.status_code == 403
    title = await store.read(lambda c: c.execute("SELECT title FROM media").fetchone()[0])
    assert title == "Before"


async def test_owner_edits_title_tags_visibility(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, title="Before", tags=("old",))
    client = await signed_in(app, "ann")
    token = await csrf_from(client, f"/m/{mid}/edit")
    form = {
        "title": "After",
        "description": "**bold**",
        "tags": "Sea, sky ,sea",
        "visibility": "unlisted",
        "license": "CC-BY-4.0",
        "csrf_token": token,
    }
    r = await client.post(f"/m/{mid}/edit", form=form)
    assert r.status_code == 303 and r.headers["Location"].startswith(f"/m/{mid}")

    def row(conn: sqlite3.Connection) -> tuple[object, ...]:
        m = conn.execute("SELECT title, visibility, license FROM media").fetchone()
        tags = [t[0] for t in conn.execute("SELECT tag FROM tags ORDER BY tag")]
        return (*m, tags)

    assert await store.read(row) == ("After", "unlisted", "CC-BY-4.0", ["sea", "sky"])
    page = await text_of(await client.get(f"/m/{mid}"))
    assert "<strong>bold</strong>" in page and "CC-BY-4.0" in page


async def test_only_owner_and_admin_may_edit_or_delete(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    await add_user(store, "bob")
    await add_user(store, "root", admin=True)
    mid = await media(store, uid)
    bob = await signed_in(app, "bob")
    assert (await bob.get(f"/m/{mid}/edit")).status_code == 404
    token = await csrf_from(bob, "/")
    r = await bob.post(f"/m/{mid}/delete", form={"csrf_token": token})
    assert r.status_code == 404
    visitor = app.test_client()
    r = await visitor.get(f"/m/{mid}/edit")
    assert r.status_code == 303 and r.headers["Location"].startswith("/signin?next=")
    root = await signed_in(app, "root")
    assert (await root.get(f"/m/{mid}/edit")).status_code == 200
    token = await csrf_from(root, f"/m/{mid}/delete")
    r = await root.post(f"/m/{mid}/delete", form={"csrf_token": token})
    assert r.status_code == 303
    left = await store.read(
        lambda c: c.execute(
            "SELECT (SELECT count(*) FROM media), (SELECT count(*) FROM files)"
        ).fetchone()[:]
    )
    assert tuple(left) == (0, 0)


async def test_delete_removes_files_from_disk(
    app: QuartTrio, store: Store, runtime: Runtime
) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid)
    folder = runtime.site.content / "media" / mid
    folder.mkdir(parents=True)
    for role in ("original", "medium", "thumb"):
        (folder / role).write_bytes(b"x")
    client = await signed_in(app, "ann")
    token = await csrf_from(client, f"/m/{mid}/delete")
    r = await client.post(f"/m/{mid}/delete", form={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"].startswith("/u/ann")
    assert not folder.exists()


async def test_owner_sees_failure_reason_and_retries(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, state="failed", reason="image: the file is not a valid JPEG")
    await store.write(lambda c: insert_job(c, mid, reason="decoder said: truncated"))
    client = await signed_in(app, "ann")
    page = await text_of(await client.get(f"/m/{mid}"))
    assert "the file is not a valid JPEG" in page and "decoder said: truncated" in page
    assert f'action="/m/{mid}/retry"' in page
    # A visitor sees nothing of a failed media.
    assert (await app.test_client().get(f"/m/{mid}")).status_code == 404
    token = CSRF_RE.search(page).group(1)  # type: ignore[union-attr]
    r = await client.post(f"/m/{mid}/retry", form={"csrf_token": token})
    assert r.status_code == 303
    states = await store.read(
        lambda c: c.execute("SELECT m.state, j.state FROM media m JOIN jobs j").fetchone()[:]
    )
    assert tuple(states) == ("processing", "queued")


async def test_processing_page_shows_progress_and_polls(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, state="processing", files={})
    await store.write(lambda c: insert_job(c, mid, state="running", progress=0.5))
    client = await signed_in(app, "ann")
    page = await text_of(await client.get(f"/m/{mid}"))
    assert 'id="overall" max="100" value="50"' in page
    assert "progress.js" in page and f'data-api="/api/v1/media/{mid}"' in page
    assert '<meta http-equiv="refresh"' in page  # without JavaScript, inside <noscript>


async def test_maintenance_shows_a_banner(app: QuartTrio, runtime: Runtime) -> None:
    assert "being upgraded" not in await text_of(await app.test_client().get("/"))
    runtime.mode = Mode.MAINTENANCE
    assert "being upgraded" in await text_of(await app.test_client().get("/"))


async def test_gallery_tag_pages_and_paging(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    for i in range(60):
        await media(store, uid, title=f"Pic {i:02d}", tags=("cats",), created_at=1e9 + i)
    page = await text_of(await app.test_client().get("/u/ann"))
    assert "Pic 59" in page and "Pic 12" in page and "Pic 11" not in page
    nxt = re.search(r'href="\?before=([^"]+)"', page)
    assert nxt
    older = await text_of(await app.test_client().get(f"/u/ann?before={nxt.group(1)}"))
    assert "Pic 11" in older and "Pic 00" in older and "Pic 12" not in older
    tag = await text_of(await app.test_client().get("/tag/cats"))
    assert "Pic 59" in tag
    assert (await app.test_client().get("/u/nobody")).status_code == 404


async def test_pages_carry_a_strict_csp_and_unknown_paths_get_a_page(app: QuartTrio) -> None:
    client = app.test_client()
    r = await client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    # No page of ours needs inline script or style, which this CSP would block.
    for path in ("/", "/signin", "/no/such/page"):
        body = await text_of(await client.get(path))
        assert " style=" not in body and "<script>" not in body, path
    r = await client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "Not found" in await text_of(r)
    r = await client.get("/api/v1/nothing", headers={"Accept": "text/html"})
    assert r.status_code == 404 and (await r.get_json())["error"]["code"] == "not_found"

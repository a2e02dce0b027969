"""Collections, feeds, oEmbed, the admin panel's actions, signing in and first-run setup."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from quart_trio import QuartTrio

from gremlin.store import Store

from .conftest import PASSWORD, add_user
from .pageclient import csrf_from, post_form, signed_in, text_of
from .pagedata import insert_job, media

ATOM = "{http://www.w3.org/2005/Atom}"


async def test_collection_create_add_order_remove(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    other, _ = await add_user(store, "bob")
    a = await media(store, uid, title="First")
    b = await media(store, uid, title="Second")
    c = await media(store, other, title="Bob's")
    secret = await media(store, other, title="Bob's secret", visibility="private")
    ann = await signed_in(app, "ann")
    r = await post_form(ann, "/collections", {"title": "Best of 2026"})
    assert r.status_code == 303 and r.headers["Location"].startswith("/u/ann/c/best-of-2026")
    cid = await store.read(lambda conn: conn.execute("SELECT id FROM collections").fetchone()[0])
    for mid in (a, b, c):
        r = await post_form(ann, "/collections/add", {"collection_id": str(cid), "media_id": mid})
        assert r.status_code == 303
    # Someone else's private media cannot be added (it does not exist for ann).
    r = await post_form(ann, "/collections/add", {"collection_id": str(cid), "media_id": secret})
    assert r.status_code == 404

    async def order() -> list[str]:
        return await store.read(
            lambda conn: [
                row[0]
                for row in conn.execute(
                    "SELECT media_id FROM collection_items ORDER BY position, added_at"
                )
            ]
        )

    assert await order() == [a, b, c]
    r = await post_form(ann, f"/collections/{cid}/move", {"media_id": c, "move": "top"})
    assert r.status_code == 303
    r = await post_form(ann, f"/collections/{cid}/move", {"media_id": a, "move": "down"})
    assert await order() == [c, b, a]
    await post_form(ann, f"/collections/{cid}/remove", {"media_id": b})
    assert await order() == [c, a]
    page = await text_of(await app.test_client().get("/u/ann/c/best-of-2026"))
    assert page.index("Bob&#39;s") < page.index("First") and "Second" not in page
    # Bob cannot change ann's collection.
    bob = await signed_in(app, "bob")
    r = await post_form(bob, f"/collections/{cid}/remove", {"media_id": a})
    assert r.status_code == 404
    assert await order() == [c, a]
    feed = ET.fromstring(
        await (await app.test_client().get("/u/ann/c/best-of-2026/feed.atom")).get_data()
    )
    assert [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")] == ["Bob's", "First"]


async def test_collection_hides_media_the_viewer_may_not_see(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    open_id = await media(store, uid, title="Open")
    hidden = await media(store, uid, title="Hidden")
    ann = await signed_in(app, "ann")
    await post_form(ann, "/collections", {"title": "Mixed"})
    cid = await store.read(lambda conn: conn.execute("SELECT id FROM collections").fetchone()[0])
    for mid in (open_id, hidden):
        await post_form(ann, "/collections/add", {"collection_id": str(cid), "media_id": mid})
    await store.write(
        lambda c: c.execute("UPDATE media SET visibility = 'private' WHERE id = ?", (hidden,))
    )
    visitor = await text_of(await app.test_client().get("/u/ann/c/mixed"))
    assert "Open" in visitor and "Hidden" not in visitor
    assert "Hidden" in await text_of(await ann.get("/u/ann/c/mixed"))


async def test_site_feed_is_valid_atom(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    await media(store, uid, title="Older", created_at=1_700_000_000, description="*hi*")
    await media(store, uid, title="Newer", created_at=1_700_000_100, tags=("sea",))
    await media(store, uid, title="Private", visibility="private")
    r = await app.test_client().get("/feed.atom")
    assert r.status_code == 200 and r.content_type.startswith("application/atom+xml")
    feed = ET.fromstring(await r.get_data())
    assert feed.tag == f"{ATOM}feed"
    entries = list(feed.iter(f"{ATOM}entry"))
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Newer", "Older"]
    for e in entries:
        assert e.findtext(f"{ATOM}id", "").startswith("http://localhost/m/")
        assert e.findtext(f"{ATOM}author/{ATOM}name") == "ann"
        assert e.findtext(f"{ATOM}published", "").endswith("Z")
    assert "<em>hi</em>" in (entries[1].findtext(f"{ATOM}content") or "")
    tag_feed = ET.fromstring(await (await app.test_client().get("/tag/sea/feed.atom")).get_data())
    assert [e.findtext(f"{ATOM}title") for e in tag_feed.iter(f"{ATOM}entry")] == ["Newer"]
    assert (await app.test_client().get("/u/nobody/feed.atom")).status_code == 404


async def test_oembed_photo_and_errors(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, title="Harbour")
    client = app.test_client()
    r = await client.get(f"/oembed?url=http://localhost/m/{mid}&format=json&maxwidth=640")
    assert r.status_code == 200
    data = await r.get_json()
    assert data["type"] == "photo" and data["version"] == "1.0"
    assert data["url"] == f"http://localhost/files/{mid}/medium"
    assert (data["width"], data["height"]) == (640, 480)
    assert data["author_name"] == "ann" and data["title"] == "Harbour"
    assert data["thumbnail_url"].endswith(f"/files/{mid}/thumb")
    assert (await client.get(f"/oembed?url=http://localhost/m/{mid}&format=xml")).status_code == 501
    assert (await client.get("/oembed?url=http://localhost/u/ann")).status_code == 404
    assert (await client.get(f"/oembed?url=http://localhost/m/{mid}&maxwidth=x")).status_code == 400


async def test_oembed_video(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    files = {
        "original": {"mime": "video/quicktime", "width": 1920, "height": 1080},
        "video_360": {"mime": "video/mp4", "width": 640, "height": 360},
        "video_720": {"mime": "video/mp4", "width": 1280, "height": 720},
        "poster": {"mime": "image/webp", "width": 1280, "height": 720},
    }
    mid = await media(store, uid, kind="video", files=files)
    data = await (await app.test_client().get(f"/oembed?url=/m/{mid}")).get_json()
    assert data["type"] == "video" and (data["width"], data["height"]) == (1280, 720)
    assert f"/files/{mid}/video_720" in data["html"] and "poster=" in data["html"]
    page = await text_of(await app.test_client().get(f"/m/{mid}"))
    assert f'poster="/files/{mid}/poster"' in page
    assert f'<source src="/files/{mid}/video_720" type="video/mp4">' in page
    assert 'href="?q=360p"' in page  # rendition choice without JavaScript
    low = await text_of(await app.test_client().get(f"/m/{mid}?q=360p"))
    assert low.index(f"/files/{mid}/video_360") < low.index(f"/files/{mid}/video_720")


async def test_audio_page_has_player_and_waveform(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    files = {
        "original": {"mime": "audio/flac"},
        "audio_opus": {"mime": "audio/ogg"},
        "audio_mp3": {"mime": "audio/mpeg"},
        "waveform": {"mime": "image/png", "width": 1800, "height": 280},
    }
    mid = await media(store, uid, kind="audio", files=files, title="Song")
    page = await text_of(await app.test_client().get(f"/m/{mid}"))
    assert "<audio controls" in page and f'src="/files/{mid}/waveform"' in page
    assert f'<source src="/files/{mid}/audio_opus" type="audio/ogg">' in page


async def test_admin_sees_failures_and_disables_a_user(app: QuartTrio, store: Store) -> None:
    await add_user(store, "root", admin=True)
    uid, _ = await add_user(store, "ann")
    mid = await media(store, uid, title="Broken", state="failed", reason="image: truncated")
    await store.write(
        lambda c: insert_job(
            c, mid, reason="decoder: truncated", log_tail="OSError: truncated file"
        )
    )
    running = await media(store, uid, title="Busy", state="processing", files={})
    await store.write(lambda c: insert_job(c, running, state="running", progress=0.25))
    admin = await signed_in(app, "root")
    page = await text_of(await admin.get("/admin"))
    assert "decoder: truncated" in page and "OSError: truncated file" in page
    assert f'action="/admin/retry/{mid}"' in page
    assert 'value="25"' in page  # the running job's progress
    live = await (await admin.get("/admin/jobs.json")).get_json()
    assert [j["progress"] for j in live["running"]] == [0.25]
    r = await post_form(admin, f"/admin/users/{uid}", {"action": "disable"}, token_from="/admin")
    assert r.status_code == 303
    # The disabled user cannot sign in any more.
    client = app.test_client()
    token = await csrf_from(client)
    r = await client.post(
        "/signin", form={"name": "ann", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 403 and "disabled" in await text_of(r)
    await post_form(admin, f"/admin/users/{uid}", {"action": "enable"}, token_from="/admin")
    await signed_in(app, "ann")
    # The retry button requeues the failed job.
    r = await post_form(admin, f"/admin/retry/{mid}", {}, token_from="/admin")
    assert r.status_code == 303
    state = await store.read(
        lambda c: c.execute("SELECT state FROM media WHERE id = ?", (mid,)).fetchone()[0]
    )
    assert state == "processing"


async def test_signin_errors_and_safe_next(app: QuartTrio, store: Store) -> None:
    await add_user(store, "ann")
    client = app.test_client()
    token = await csrf_from(client)
    r = await client.post("/signin", form={"name": "ann", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and "wrong name or password" in await text_of(r)
    form = {"name": "ann", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/"}
    r = await client.post("/signin", form=form)
    assert r.status_code == 303 and r.headers["Location"] == "/?done=signed_in"
    assert "Sign out" in await text_of(await client.get("/"))
    r = await post_form(client, "/signout", {})
    assert r.status_code == 303
    assert "Sign in" in await text_of(await client.get("/"))


async def test_first_run_setup_creates_the_admin_once(app: QuartTrio, store: Store) -> None:
    from gremlin.web.auth import first_run_link

    link = await first_run_link(app.extensions["gremlin"], "http://localhost")
    assert link is not None
    path = link.removeprefix("http://localhost")
    client = app.test_client()
    page = await text_of(await client.get(path))
    assert "Create the administrator" in page
    form = {"name": "boss", "password": "long enough pw", "password2": "different pw"}
    r = await post_form(client, path, form, token_from=path)
    assert r.status_code == 400 and "differ" in await text_of(r)
    form["password2"] = form["password"]
    r = await post_form(client, path, form, token_from=path)
    assert r.status_code == 303 and r.headers["Location"].startswith("/u/boss")
    assert (await client.get("/admin")).status_code == 200  # signed in as the new admin
    assert (await app.test_client().get(path)).status_code == 404  # the link is spent
    is_admin = await store.read(
        lambda c: c.execute("SELECT is_admin FROM users WHERE name='boss'").fetchone()[0]
    )
    assert is_admin == 1


async def test_admin_sets_a_user_quota(app: QuartTrio, store: Store) -> None:
    await add_user(store, "root", admin=True)
    uid, _ = await add_user(store, "ann")
    admin = await signed_in(app, "root")

    async def quota() -> int | None:
        return await store.read(
            lambda c: c.execute("SELECT quota_bytes FROM users WHERE id = ?", (uid,)).fetchone()[0]
        )

    path = f"/admin/users/{uid}/quota"
    assert (await post_form(admin, path, {"quota_mib": "1.5"}, "/admin")).status_code == 303
    assert await quota() == 1572864
    assert (await post_form(admin, path, {"quota_mib": "lots"}, "/admin")).status_code == 400
    assert await quota() == 1572864
    await post_form(admin, path, {"quota_mib": ""}, "/admin")
    assert await quota() is None  # back to the site's default
    ann = await signed_in(app, "ann")
    assert (await post_form(ann, path, {"quota_mib": "999"})).status_code == 403


async def test_feeds_carry_enclosures_for_audio_and_video(app: QuartTrio, store: Store) -> None:
    uid, _ = await add_user(store, "ann")
    song = await media(
        store,
        uid,
        kind="audio",
        title="Song",
        files={
            "audio_opus": {"mime": "audio/webm", "size": 111},
            "audio_mp3": {"mime": "audio/mpeg", "size": 222},
        },
    )
    clip = await media(
        store,
        uid,
        kind="video",
        title="Clip",
        files={
            "video_360": {"mime": "video/mp4", "height": 360, "size": 333},
            "video_720": {"mime": "video/mp4", "height": 720, "size": 444},
            "video_1080": {"mime": "video/mp4", "height": 1080, "size": 555},
        },
    )
    await media(store, uid, title="Photo")
    feed = ET.fromstring(await (await app.test_client().get("/u/ann/feed.atom")).get_data())
    enclosures = {
        e.findtext(f"{ATOM}title"): [
            (link.get("href"), link.get("type"), link.get("length"))
            for link in e.findall(f"{ATOM}link[@rel='enclosure']")
        ]
        for e in feed.iter(f"{ATOM}entry")
    }
    assert enclosures == {
        "Song": [(f"http://localhost/files/{song}/audio_mp3", "audio/mpeg", "222")],
        "Clip": [(f"http://localhost/files/{clip}/video_720", "video/mp4", "444")],
        "Photo": [],
    }

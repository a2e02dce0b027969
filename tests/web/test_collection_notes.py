"""Collection item notes: shown (safe Markdown) under each tile, edited only by the owner."""

from __future__ import annotations

from quart_trio import QuartTrio

from gremlin.store import Store
from gremlin.web.collections_db import MAX_NOTE_CHARS

from .conftest import add_user
from .pageclient import post_form, signed_in, text_of
from .pagedata import media

NOTE_FORM = "/note"


async def collection_with(app: QuartTrio, store: Store, *titles: str) -> tuple[int, list[str]]:
    uid = await store.read(
        lambda c: c.execute("SELECT id FROM users WHERE name = 'ann'").fetchone()
    )
    ids = [await media(store, uid[0], title=t) for t in titles]
    ann = await signed_in(app, "ann")
    await post_form(ann, "/collections", {"title": "Trip"})
    cid = await store.read(lambda c: c.execute("SELECT id FROM collections").fetchone()[0])
    for mid in ids:
        await post_form(ann, "/collections/add", {"collection_id": str(cid), "media_id": mid})
    return cid, ids


async def notes(store: Store) -> dict[str, str | None]:
    return await store.read(
        lambda c: dict(c.execute("SELECT media_id, note FROM collection_items").fetchall())
    )


async def test_owner_edits_notes_and_everyone_sees_them_sanitised(
    app: QuartTrio, store: Store
) -> None:
    await add_user(store, "ann")
    cid, (a, b) = await collection_with(app, store, "Harbour", "Hills")
    ann = await signed_in(app, "ann")
    visitor_page = await text_of(await app.test_client().get("/u/ann/c/trip"))
    assert f"/collections/{cid}{NOTE_FORM}" not in visitor_page
    owner_page = await text_of(await ann.get("/u/ann/c/trip"))
    assert owner_page.count(f'action="/collections/{cid}{NOTE_FORM}"') == 2
    note = "Taken at *dawn* <script>alert(1)</script> [x](javascript:alert(2))"
    r = await post_form(ann, f"/collections/{cid}{NOTE_FORM}", {"media_id": a, "note": note})
    assert r.status_code == 303 and "done=note_saved" in r.headers["Location"]
    assert await notes(store) == {a: note, b: None}
    page = await text_of(await app.test_client().get("/u/ann/c/trip"))
    shown = page[page.index('class="item-note"') :]
    shown = shown[: shown.index("</div>")]
    assert "<em>dawn</em>" in shown
    for bad in ("<script", "alert(", "javascript:"):
        assert bad not in shown
    assert page.count('class="item-note"') == 1  # only the item that has one
    # Empty clears it; too long is refused and changes nothing.
    r = await post_form(ann, f"/collections/{cid}{NOTE_FORM}", {"media_id": a, "note": " "})
    assert r.status_code == 303 and await notes(store) == {a: None, b: None}
    r = await post_form(
        ann, f"/collections/{cid}{NOTE_FORM}", {"media_id": b, "note": "n" * (MAX_NOTE_CHARS + 1)}
    )
    assert r.status_code == 400 and f"at most {MAX_NOTE_CHARS}" in await text_of(r)
    assert await notes(store) == {a: None, b: None}


async def test_only_the_owner_may_edit_a_note(app: QuartTrio, store: Store) -> None:
    await add_user(store, "ann")
    await add_user(store, "bob")
    await add_user(store, "root", admin=True)
    cid, (a,) = await collection_with(app, store, "Harbour")
    path = f"/collections/{cid}{NOTE_FORM}"
    for name in ("bob", "root"):
        client = await signed_in(app, name)
        assert f'action="{path}"' not in await text_of(await client.get("/u/ann/c/trip"))
        r = await post_form(client, path, {"media_id": a, "note": f"{name} was here"})
        assert r.status_code == 404
    r = await app.test_client().post(path, form={"media_id": a, "note": "visitor"})
    assert r.status_code == 403  # no CSRF token
    ann = await signed_in(app, "ann")
    r = await ann.post(path, form={"media_id": a, "note": "no token"})
    assert r.status_code == 403
    r = await post_form(ann, path, {"media_id": "not-in-it", "note": "x"})
    assert r.status_code == 404
    assert await notes(store) == {a: None}

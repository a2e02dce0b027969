"""Comments on the media page: posting (CSRF, sign-in, visibility, bounds), safe rendering,
and who may delete one."""

from __future__ import annotations

import re

from quart_trio import QuartTrio

from gremlin.store import Store
from gremlin.web.comments_db import MAX_COMMENT_CHARS

from .conftest import add_user
from .pageclient import csrf_from, post_form, signed_in, text_of
from .pagedata import media


async def comment_rows(store: Store) -> list[tuple[str, int, str]]:
    return await store.read(
        lambda c: [
            tuple(r)
            for r in c.execute("SELECT media_id, author_id, body FROM comments ORDER BY id")
        ]
    )


async def test_member_comments_on_visible_media_and_the_page_shows_them(
    app: QuartTrio, store: Store
) -> None:
    ann, _ = await add_user(store, "ann")
    bob, _ = await add_user(store, "bob")
    public = await media(store, ann, title="Sunset")
    unlisted = await media(store, ann, title="Just for friends", visibility="unlisted")
    client = await signed_in(app, "bob")
    r = await post_form(client, f"/m/{public}/comments", {"body": "First *light*"})
    assert r.status_code == 303
    assert re.fullmatch(rf"/m/{public}\?done=commented#c\d+", r.headers["Location"])
    r = await post_form(client, f"/m/{public}/comments", {"body": "  and a second one \r\n"})
    assert r.status_code == 303
    r = await post_form(client, f"/m/{unlisted}/comments", {"body": "nice"})
    assert r.status_code == 303
    assert await comment_rows(store) == [
        (public, bob, "First *light*"),
        (public, bob, "and a second one"),
        (unlisted, bob, "nice"),
    ]
    page = await text_of(await app.test_client().get(f"/m/{public}"))
    assert "Comments (2)" in page
    assert page.index("<em>light</em>") < page.index("and a second one")  # oldest first
    assert '<a href="/u/bob">bob</a>' in page and "<time datetime=" in page
    assert "Sign in</a> to comment" in page and 'name="body"' not in page  # visitor: no form
    assert "Your comment is posted." in await text_of(
        await client.get(r.headers["Location"].partition("#")[0])
    )


async def test_comment_refused_without_csrf_for_visitors_and_on_hidden_media(
    app: QuartTrio, store: Store
) -> None:
    ann, _ = await add_user(store, "ann")
    await add_user(store, "bob")
    public = await media(store, ann)
    private = await media(store, ann, title="Secret", visibility="private")
    processing = await media(store, ann, title="Not yet", state="processing")
    bob = await signed_in(app, "bob")
    # No CSRF token: 403, nothing written.
    r = await bob.post(f"/m/{public}/comments", form={"body": "hello"})
    assert r.status_code == 403
    # A visitor (with a valid token of their anonymous session) is sent to sign in.
    visitor = app.test_client()
    token = await csrf_from(visitor, "/signin")
    r = await visitor.post(f"/m/{public}/comments", form={"body": "hi", "csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"].startswith("/signin")
    # Someone else's private or unfinished media does not exist for bob, even to comment on.
    for hidden in (private, processing, "no-such-media"):
        r = await post_form(bob, f"/m/{hidden}/comments", {"body": "peek"})
        assert r.status_code == 404
        assert "Secret" not in await text_of(r)
    assert await comment_rows(store) == []
    # The owner may comment on their own private media.
    owner = await signed_in(app, "ann")
    assert (await post_form(owner, f"/m/{private}/comments", {"body": "note"})).status_code == 303


async def test_empty_and_too_long_comments_are_refused_with_a_message(
    app: QuartTrio, store: Store
) -> None:
    ann, _ = await add_user(store, "ann")
    mid = await media(store, ann)
    client = await signed_in(app, "ann")
    r = await post_form(client, f"/m/{mid}/comments", {"body": "  \n "})
    assert r.status_code == 400
    assert "a comment cannot be empty" in await text_of(r)
    long = "x" * (MAX_COMMENT_CHARS + 1)
    r = await post_form(client, f"/m/{mid}/comments", {"body": long})
    page = await text_of(r)
    assert r.status_code == 400 and f"at most {MAX_COMMENT_CHARS} characters" in page
    assert f">{long}</textarea>" in page  # what was written is not lost
    exact = "y" * MAX_COMMENT_CHARS
    assert (await post_form(client, f"/m/{mid}/comments", {"body": exact})).status_code == 303
    assert [row[2] for row in await comment_rows(store)] == [exact]


async def test_comment_with_html_and_script_is_sanitised(app: QuartTrio, store: Store) -> None:
    ann, _ = await add_user(store, "ann")
    await add_user(store, "eve")
    mid = await media(store, ann)
    eve = await signed_in(app, "eve")
    payload = (
        '<script>alert("xss")</script> **bold** <img src="https://evil.example/x.png"'
        ' onerror="alert(2)"> [click](javascript:alert(3)) <a href="#" onclick="alert(4)">a</a>'
        ' "><svg onload=alert(5)>'
    )
    assert (await post_form(eve, f"/m/{mid}/comments", {"body": payload})).status_code == 303
    page = await text_of(await app.test_client().get(f"/m/{mid}"))
    comment = page[page.index('class="comment"') : page.index("</ol>")]
    assert "<strong>bold</strong>" in comment
    for bad in ("<script", "alert(", "onerror", "onclick", "onload", "javascript:", "<img", "<svg"):
        assert bad not in comment, bad


async def test_who_may_delete_a_comment(app: QuartTrio, store: Store) -> None:
    ann, _ = await add_user(store, "ann")  # the media's owner
    await add_user(store, "carol")  # the comment's author
    await add_user(store, "dave")  # another member
    await add_user(store, "root", admin=True)
    mid = await media(store, ann)
    carol = await signed_in(app, "carol")
    for body in ("one", "two", "three"):
        await post_form(carol, f"/m/{mid}/comments", {"body": body})
    ids = await store.read(lambda c: [r[0] for r in c.execute("SELECT id FROM comments")])
    dave = await signed_in(app, "dave")
    assert "/delete" not in await text_of(await dave.get(f"/m/{mid}"))  # no button for dave
    r = await post_form(dave, f"/m/{mid}/comments/{ids[0]}/delete", {})
    assert r.status_code == 403
    r = await app.test_client().post(f"/m/{mid}/comments/{ids[0]}/delete")
    assert r.status_code == 403  # a visitor, without a token
    assert len(await comment_rows(store)) == 3
    # The author, the media's owner and an admin may.
    owner, admin = await signed_in(app, "ann"), await signed_in(app, "root")
    assert f"/comments/{ids[1]}/delete" in await text_of(await owner.get(f"/m/{mid}"))
    for client, cid in ((carol, ids[0]), (owner, ids[1]), (admin, ids[2])):
        r = await post_form(client, f"/m/{mid}/comments/{cid}/delete", {})
        assert r.status_code == 303 and "done=comment_deleted" in r.headers["Location"]
    assert await comment_rows(store) == []
    # Deleting again, or through another media's URL, is a 404.
    assert (await post_form(carol, f"/m/{mid}/comments/{ids[0]}/delete", {})).status_code == 404


async def test_comments_of_media_made_private_are_hidden_with_it(
    app: QuartTrio, store: Store
) -> None:
    ann, _ = await add_user(store, "ann")
    await add_user(store, "carol")
    mid = await media(store, ann, title="Was public")
    other = await media(store, ann, title="Other")
    carol = await signed_in(app, "carol")
    await post_form(carol, f"/m/{mid}/comments", {"body": "a remark about it"})
    cid = await store.read(lambda c: c.execute("SELECT id FROM comments").fetchone()[0])
    # A comment id under another media's URL is not that media's comment.
    assert (await post_form(carol, f"/m/{other}/comments/{cid}/delete", {})).status_code == 404
    await store.write(
        lambda c: c.execute("UPDATE media SET visibility = 'private' WHERE id = ?", (mid,))
    )
    for client in (app.test_client(), carol):
        r = await client.get(f"/m/{mid}")
        assert r.status_code == 404 and "a remark" not in await text_of(r)
    # Its author cannot reach it either (not even to delete): the media does not exist for her.
    assert (await post_form(carol, f"/m/{mid}/comments/{cid}/delete", {})).status_code == 404
    for path in ("/feed.atom", "/u/ann/feed.atom", "/u/ann", "/"):
        assert "a remark" not in await text_of(await app.test_client().get(path))
    assert len(await comment_rows(store)) == 1

"""Collection pages: a user's collections, one collection, create / add / remove / order."""

from __future__ import annotations

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, GremlinError
from . import collections_db as cdb
from . import queries
from .pageutil import (
    error_page,
    not_found,
    page,
    redirect_to,
    require_signed_in,
    runtime,
    viewer,
    warm_markdown,
)
from .queries import SQLITE_MAX_INT

bp = Blueprint("collections", __name__)
bp.register_error_handler(GremlinError, error_page)


def _int(text: str | None, what: str) -> int:
    try:
        number = int(text or "")
    except ValueError:
        raise BadRequest(f"{what} is not a number") from None
    if not 0 <= number <= SQLITE_MAX_INT:
        raise BadRequest(f"{what} is out of range")
    return number


@bp.get("/collections")
async def mine() -> ResponseReturnValue:
    who = await require_signed_in()
    return redirect_to("collections.of_user", name=who.name)


@bp.get("/u/<name>/collections")
async def of_user(name: str) -> ResponseReturnValue:
    owner = await runtime().store.read(queries.user_named, name)
    if owner is None:
        raise not_found("user")
    items = await runtime().store.read(cdb.collections_of, owner["id"])
    return await page(
        "collections.html", owner=owner, collections=items, mine=(await viewer()).owns(owner["id"])
    )


@bp.get("/u/<name>/c/<slug>")
async def collection(name: str, slug: str) -> ResponseReturnValue:
    who = await viewer()
    owner = await runtime().store.read(queries.user_named, name)
    coll = owner and await runtime().store.read(cdb.collection_by_slug, owner["id"], slug)
    if not coll:
        raise not_found("collection")
    items = await runtime().store.read(cdb.collection_items, coll["id"], who)
    await warm_markdown([coll["description"], *(m["note"] for m in items)])
    return await page(
        "collection.html",
        c=coll,
        items=items,
        mine=who.owns(coll["owner_id"]),
        max_note_chars=cdb.MAX_NOTE_CHARS,
    )


@bp.post("/collections")
async def create() -> ResponseReturnValue:
    who = await require_signed_in()
    form = await request.form
    slug = await runtime().store.write(
        cdb.create_collection, who.user_id, form.get("title", ""), form.get("description", "")
    )
    return redirect_to("collections.collection", done="created", name=who.name, slug=slug)


@bp.post("/collections/add")
async def add_item() -> ResponseReturnValue:
    who = await require_signed_in()
    form = await request.form
    coll_id = _int(form.get("collection_id"), "collection_id")
    media_id = form.get("media_id", "")
    slug = await runtime().store.write(cdb.add_item, coll_id, who.user_id, media_id, who)
    return redirect_to("collections.collection", done="added", name=who.name, slug=slug)


@bp.post("/collections/<int:collection_id>/remove")
async def remove_item(collection_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    form = await request.form
    slug = await runtime().store.write(
        cdb.remove_item, collection_id, who.user_id, form.get("media_id", "")
    )
    return redirect_to("collections.collection", done="removed", name=who.name, slug=slug)


@bp.post("/collections/<int:collection_id>/move")
async def move_item(collection_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    form = await request.form
    try:
        move = cdb.Move(form.get("move", ""))
    except ValueError:
        raise BadRequest("move must be up, down or top") from None
    slug = await runtime().store.write(
        cdb.move_item, collection_id, who.user_id, form.get("media_id", ""), move
    )
    return redirect_to("collections.collection", name=who.name, slug=slug)


@bp.post("/collections/<int:collection_id>/note")
async def set_note(collection_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    form = await request.form
    slug = await runtime().store.write(
        cdb.set_note, collection_id, who.user_id, form.get("media_id", ""), form.get("note", "")
    )
    return redirect_to("collections.collection", done="note_saved", name=who.name, slug=slug)


@bp.post("/collections/<int:collection_id>/delete")
async def delete(collection_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    await runtime().store.write(cdb.delete_collection, collection_id, who.user_id)
    return redirect_to("collections.of_user", name=who.name)

"""The JSON API under /api/v1 (DESIGN.md's stable names): media create, read, list, edit,
delete, retry. Errors are always {"error": {"code", "message"}} (see app.error_response).
The tus endpoint is gremlin.web.uploads; the OpenAPI document is gremlin.web.openapi."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, Forbidden, NotFound
from ..media.base import Kind
from . import api_queries, media_edit
from .api_queries import MAX_LIMIT, STATES
from .auth import base_url, current_user, get_runtime, require_user, streams_body
from .queries import VISITOR, Cursor, Viewer
from .uploads_form import check_writable, commit_form_upload

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_JSON_BYTES = 64 * 1024
EDITABLE = ("title", "description", "tags", "visibility", "license")


async def viewer() -> Viewer:
    user = await current_user()
    return VISITOR if user is None else Viewer(id=user.id, name=user.name, is_admin=user.is_admin)


def page_url(media_id: str) -> str:
    return f"{base_url()}/m/{media_id}"


@bp.post("/media")
@streams_body
async def create_media() -> ResponseReturnValue:
    user = await require_user()
    committed = await commit_form_upload(user.id)
    browser_form = "Authorization" not in request.headers and (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    )
    if browser_form:  # the no-JavaScript page form posts here too: show the media's page
        return Response(
            b"", status=303, headers={"Location": f"/m/{committed.media_id}?done=uploaded"}
        )
    body = {"id": committed.media_id, "state": committed.state, "url": page_url(committed.media_id)}
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/media/{committed.media_id}"
    return response


async def _managed(media_id: str) -> tuple[dict[str, Any], Viewer]:
    """The media if this user may change it (owner or admin). Others get 404 if they may not
    even see it, 403 if they may."""
    await require_user()
    who = await viewer()
    media = await get_runtime().store.read(api_queries.media_row, media_id)
    if media is None:
        raise NotFound(f"no media {media_id}")
    if not who.may_manage(media["owner_id"]):
        if await get_runtime().store.read(api_queries.viewable, media_id, who) is None:
            raise NotFound(f"no media {media_id}")
        raise Forbidden("only the media's owner or an admin may change it")
    return media, who


@bp.get("/media/<media_id>")
async def get_media(media_id: str) -> ResponseReturnValue:
    runtime = get_runtime()
    found = await runtime.store.read(
        api_queries.get_media,
        media_id,
        await viewer(),
        base_url(),
        runtime.settings.public_originals,
    )
    if found is None:
        raise NotFound(f"no media {media_id}")
    return found


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


@bp.get("/media")
async def list_media() -> ResponseReturnValue:
    try:
        limit = int(request.args.get("limit", api_queries.DEFAULT_LIMIT))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    raw_cursor = request.args.get("cursor")
    cursor = Cursor.decode(raw_cursor)
    if raw_cursor and cursor is None:
        raise BadRequest("cursor is not one this API gave out")
    query = functools.partial(
        api_queries.list_media,
        viewer=await viewer(),
        base=base_url(),
        public_originals=get_runtime().settings.public_originals,
        owner=request.args.get("owner") or None,
        kind=_choice("kind", tuple(k.value for k in Kind)),
        state=_choice("state", STATES),
        tag=request.args.get("tag") or None,
        cursor=cursor,
        limit=limit,
    )
    items, nxt = await get_runtime().store.read(query)
    return {"items": items, "next": nxt.encode() if nxt else None}


@bp.patch("/media/<media_id>")
async def edit_media(media_id: str) -> ResponseReturnValue:
    check_writable()
    await require_user()  # who is asking comes before what they sent
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise BadRequest(f"the JSON body is larger than {MAX_JSON_BYTES} bytes")
    try:  # bytes: json detects their encoding; Quart's silent get_json still raised on \xff
        patch = json.loads(await request.get_data())
    except ValueError:  # not JSON, not UTF-8/16/32 text
        patch = None
    if not isinstance(patch, dict) or not patch or set(patch) - set(EDITABLE):
        raise BadRequest(f"send a JSON object with some of: {', '.join(EDITABLE)}")
    media, who = await _managed(media_id)
    store = get_runtime().store
    current = await store.read(_tags_of, media_id)
    merged = {k: str(media[k] or "") for k in EDITABLE if k != "tags"}
    merged["tags"] = ",".join(current)
    for key, value in patch.items():
        if key == "tags" and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str):
            raise BadRequest(f"{key} must be a string" + (" or a list" if key == "tags" else ""))
        merged[key] = value
    changes = media_edit.MediaChanges.from_form(merged)
    await store.write(media_edit.update_media, media_id, changes)
    log.info("media edited: media=%s by=%s keys=%s", media_id, who.name, ",".join(patch))
    return await _represent(media_id, who)


async def _represent(media_id: str, who: Viewer) -> dict[str, Any]:
    runtime = get_runtime()
    found = await runtime.store.read(
        api_queries.get_media, media_id, who, base_url(), runtime.settings.public_originals
    )
    if found is None:
        raise NotFound(f"no media {media_id}")
    return found


def _tags_of(conn: Any, media_id: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT tag FROM tags WHERE media_id = ?", (media_id,))]


@bp.delete("/media/<media_id>")
async def delete_media(media_id: str) -> ResponseReturnValue:
    check_writable()
    _, who = await _managed(media_id)
    runtime = get_runtime()
    paths = await runtime.store.write(media_edit.delete_media_rows, media_id)
    from .pages_media import remove_files

    await trio.to_thread.run_sync(remove_files, runtime.site.content, media_id, paths)
    log.info("media deleted: media=%s by=%s files=%d", media_id, who.name, len(paths))
    return Response(b"", status=204)


@bp.post("/media/<media_id>/retry")
async def retry_media(media_id: str) -> ResponseReturnValue:
    check_writable()
    _, who = await _managed(media_id)
    from ..store.job_queries import retry_media as requeue_failed_jobs

    runtime = get_runtime()
    requeued = await runtime.store.write(requeue_failed_jobs, media_id)
    runtime.nudge_jobs()
    log.info("media retried: media=%s by=%s jobs=%d", media_id, who.name, requeued)
    return await _represent(media_id, who)


def register(app: Any) -> None:
    """The machine-facing routes: JSON API, tus uploads, stored files, the OpenAPI document."""
    from . import files, openapi, uploads

    for blueprint in (bp, uploads.bp, files.bp, openapi.bp):
        app.register_blueprint(blueprint)

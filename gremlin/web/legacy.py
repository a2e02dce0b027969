"""301 redirects from an imported MediaGoblin instance's URLs to ours (see
docs/mediagoblin-migration.md), so old links and embeds keep working:

    /u/<user>/m/<slug>/ and /u/<user>/m/id:<n>/  -> /m/<media-id>
    /mgoblin_media/<path>                       -> /files/<media-id>/<role>
    /u/<user>/collection/<slug>/                -> /u/<name>/c/<slug>
    /u/<user>/, /u/<user>/collections/, /u/<user>/atom/  -> /u/<name>[/collections|/feed.atom]
    /tag/<tag>/, /u/<user>/tag/<tag>/, /atom/   -> /tag/<tag>, /feed.atom

Everything comes from legacy_map rows written by `gremlin import-mediagoblin`; an unknown
URL is a plain 404.
"""

from __future__ import annotations

import urllib.parse

from quart import Blueprint, Quart, current_app, redirect
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from ..mediagoblin import (
    legacy_collection_target,
    legacy_file_target,
    legacy_media_target,
    legacy_user_target,
)
from ..store import Store

bp = Blueprint("legacy", __name__)


def _store() -> Store:
    store: Store = current_app.extensions["gremlin"].store
    return store


def _moved(path: str) -> ResponseReturnValue:
    return redirect(urllib.parse.quote(path, safe="/:@-._~"), 301)


@bp.get("/u/<user>/m/<slug>/")
@bp.get("/u/<user>/m/<slug>/<path:rest>")  # comment permalinks and other subpages
async def media(user: str, slug: str, rest: str = "") -> ResponseReturnValue:
    media_id = await _store().read(legacy_media_target, user, slug)
    if media_id is None:
        raise NotFound()
    return _moved(f"/m/{media_id}")


@bp.get("/mgoblin_media/<path:path>")
async def media_file(path: str) -> ResponseReturnValue:
    found = await _store().read(legacy_file_target, path)
    if found is None:
        raise NotFound()
    media_id, role = found
    return _moved(f"/files/{media_id}/{role}" if role else f"/m/{media_id}")


@bp.get("/u/<user>/collection/<slug>/")
async def collection(user: str, slug: str) -> ResponseReturnValue:
    found = await _store().read(legacy_collection_target, user, slug)
    if found is None:
        raise NotFound()
    return _moved(f"/u/{found[0]}/c/{found[1]}")


USER_PAGES = {"": "", "collections/": "/collections", "atom/": "/feed.atom"}


@bp.get("/u/<user>/")
@bp.get("/u/<user>/collections/", defaults={"page": "collections/"})
@bp.get("/u/<user>/atom/", defaults={"page": "atom/"})
async def user_pages(user: str, page: str = "") -> ResponseReturnValue:
    name = await _store().read(legacy_user_target, user)
    if name is None:
        raise NotFound()
    return _moved(f"/u/{name}{USER_PAGES[page]}")


@bp.get("/tag/<tag>/")
@bp.get("/u/<user>/tag/<tag>/")
async def tag(tag: str, user: str = "") -> ResponseReturnValue:
    return _moved(f"/tag/{tag}")


@bp.get("/atom/")
async def feed() -> ResponseReturnValue:
    return _moved("/feed.atom")


def register(app: Quart) -> None:
    app.register_blueprint(bp)

"""Browsing pages: home, a user's gallery, tag pages, the media page."""

from __future__ import annotations

import errno
import time
from typing import Any

from quart import Blueprint, Quart, Response, current_app, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound as HTTPNotFound

from ..errors import GremlinError
from . import queries, render
from .pageutil import (
    absolute,
    error_page,
    not_found,
    page,
    runtime,
    tag_redirect,
    viewer,
    warm_markdown,
)

bp = Blueprint("pages", __name__)
bp.register_error_handler(GremlinError, error_page)

VIDEO_PREFIX = "video_"
AUDIO_PREFIX = "audio_"
TAG_CLOUD_SECONDS = 60.0


@bp.get("/")
async def home() -> ResponseReturnValue:
    cursor = queries.Cursor.decode(request.args.get("before"))
    listing = await runtime().store.read(queries.recent_public, cursor)
    tags = [] if cursor else await popular_tags()
    return await page("home.html", page=listing, tags=tags)


async def popular_tags() -> list[tuple[str, int]]:
    """The home page's tag cloud, recounted at most once a minute (a full scan of tags)."""
    cached = current_app.extensions.get("gremlin.popular_tags")
    now = time.monotonic()
    if cached is None or now - cached[0] > TAG_CLOUD_SECONDS:
        tags = await runtime().store.read(queries.popular_tags, 24)
        cached = (now, tags)
        current_app.extensions["gremlin.popular_tags"] = cached
    tags_now: list[tuple[str, int]] = cached[1]
    return tags_now


@bp.get("/u/<name>")
async def gallery(name: str) -> ResponseReturnValue:
    who = await viewer()
    owner = await runtime().store.read(queries.user_named, name)
    if owner is None:
        raise not_found("user")
    cursor = queries.Cursor.decode(request.args.get("before"))
    listing = await runtime().store.read(queries.user_gallery, owner["id"], who, cursor)
    return await page("gallery.html", owner=owner, page=listing)


@bp.get("/tag/<tag>")
async def tag_page(tag: str) -> ResponseReturnValue:
    if moved := tag_redirect("pages.tag_page", tag):
        return moved
    cursor = queries.Cursor.decode(request.args.get("before"))
    listing = await runtime().store.read(queries.tagged, tag, cursor)
    return await page("tag.html", tag=tag, page=listing)


async def viewable_media(media_id: str) -> dict[str, Any]:
    """The media if this request's viewer may see it; 404 otherwise (never reveal a private one)."""
    media = await runtime().store.read(queries.media_detail, media_id)
    who = await viewer()
    if media is None or not queries.may_view(media, who):
        raise not_found("media")
    if not queries.may_fetch_original(media, who, runtime().settings.public_originals):
        media["files"].pop("original", None)  # GPS and all: not for every viewer
    return media


def players(media: dict[str, Any], quality: str | None) -> dict[str, Any]:
    """What the media page shows on its stage, from the files that exist."""
    files = media["files"]
    videos = sorted(
        (f for role, f in files.items() if role.startswith(VIDEO_PREFIX)),
        key=lambda f: f.get("height") or 0,
    )
    audios = [f for role, f in files.items() if role.startswith(AUDIO_PREFIX)]
    chosen = None
    if videos:
        by_label = {rendition_label(f): f for f in videos}
        # Default: the largest rendition not above 720 lines (a sane first load), else the smallest.
        fits = [f for f in videos if (f.get("height") or 0) <= 720]
        chosen = by_label.get(quality or "") or (fits[-1] if fits else videos[0])
    # Never the original itself: a failed one may be a decompression bomb, or not decodable.
    image = files.get("medium") or files.get("large")
    if media["kind"] == "image" and image is not None and image["mime"].startswith("image/"):
        larger = files.get("large") or files.get("original")
    else:
        image, larger = None, None
    return {
        "videos": videos,
        "video": chosen,
        "poster": files.get("poster"),
        "audios": audios,
        "waveform": files.get("waveform"),
        "image": image,
        "larger": larger if larger is not image else None,
    }


def rendition_label(f: dict[str, Any]) -> str:
    return f"{f['height']}p" if f.get("height") else f["role"].removeprefix(VIDEO_PREFIX)


def share_image(media: dict[str, Any]) -> dict[str, Any] | None:
    files = media["files"]
    return files.get("medium") or files.get("poster") or files.get("thumb") or files.get("waveform")


@bp.get("/m/<media_id>")
async def media_page(media_id: str) -> ResponseReturnValue:
    return await render_media_page(media_id)


async def render_media_page(media_id: str, status: int = 200, **extra: Any) -> ResponseReturnValue:
    """The media page; `extra` reaches the template (the comment form's error and draft)."""
    from .comments_db import MAX_COMMENT_CHARS, comments_for

    media = await viewable_media(media_id)
    who = await viewer()
    comments = await runtime().store.read(comments_for, media_id, who)
    manage = who.may_manage(media["owner_id"])
    collections = []
    if who.signed_in and media["state"] == "ready":
        from .collections_db import collections_of

        collections = await runtime().store.read(collections_of, who.user_id)
    await warm_markdown([media["description"], *(c["body"] for c in comments)])
    media_url = absolute(f"/m/{media_id}")
    return await page(
        "media.html",
        status=status,
        m=media,
        manage=manage,
        stage=players(media, request.args.get("q")),
        label=rendition_label,
        exif=render.exif_summary(media["exif_data"]),
        progress=render.progress_percent(media["jobs"]),
        failed_jobs=[j for j in media["jobs"] if j["state"] == "failed"],
        summary=render.plain_summary(media["description"]),
        media_url=media_url,
        share=share_image(media),
        absolute=absolute,
        collections=collections,
        comments=comments,
        max_comment_chars=MAX_COMMENT_CHARS,
        **extra,
    )


FAVICON_MAX_AGE_SECONDS = 24 * 3600


@bp.get("/favicon.ico")
async def favicon() -> ResponseReturnValue:
    """What browsers and feed readers ask for whatever the page says (static/favicon.ico, a
    16/32/48 px ICO drawn with Pillow from static/favicon.svg, which pages link to)."""
    response = await current_app.send_static_file("favicon.ico")
    response.cache_control.public = True
    response.cache_control.max_age = FAVICON_MAX_AGE_SECONDS
    return response


# Pages load only what the site itself serves: no inline script or style, no third party.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self';"
    " style-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self';"
    " frame-ancestors 'self'"
)


async def page_headers(response: Response) -> Response:
    """Defence in depth for HTML: a strict CSP, no MIME sniffing, no referrer leaks."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


async def not_found_page(e: HTTPNotFound) -> ResponseReturnValue:
    """Unknown paths: an HTML page for browsers, the JSON error for the API and scripts."""
    from .app import error_response  # the app module imports this one

    machine = request.path.startswith(("/api/", "/files/", "/oembed"))
    if machine or not request.accept_mimetypes.accept_html:
        return error_response(404, "not_found", e.description or "no such path")
    return await error_page(not_found("page"))


def _static_view(static: Any) -> Any:
    """Quart's static view, with a name too long for the filesystem a 404 (it was a 500)."""

    async def view(filename: str) -> ResponseReturnValue:
        try:
            return await static(filename=filename)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise HTTPNotFound() from None
            raise

    return view


def register(app: Quart) -> None:
    from . import admin, feeds, pages_account, pages_collections, pages_comments, pages_media
    from .pageutil import install_template_helpers

    install_template_helpers(app)
    app.view_functions["static"] = _static_view(app.view_functions["static"])
    app.after_request(page_headers)
    app.register_error_handler(HTTPNotFound, not_found_page)
    app.register_blueprint(bp)
    app.register_blueprint(pages_account.bp)
    app.register_blueprint(pages_media.bp)
    app.register_blueprint(pages_collections.bp)
    app.register_blueprint(pages_comments.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(admin.bp)

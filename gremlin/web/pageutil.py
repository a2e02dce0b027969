"""What every HTML page needs: the viewer, rendering with our globals, errors as pages,
absolute URLs, file URLs, notices after a redirect."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio
from quart import Quart, current_app, g, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.wrappers.response import Response as WerkzeugResponse

from ..errors import Forbidden, GremlinError, NotFound
from ..media.commit import normalise_tags
from ..runtime import Mode, Runtime
from . import page_auth, render, tiles
from .queries import VISITOR, Viewer

SITE_NAME = "contentgremlin"

# Messages shown after a redirect (?done=<key>): fixed texts, so no user input is reflected.
NOTICES = {
    "saved": ("ok", "Your changes are saved."),
    "deleted": ("ok", "The media is deleted."),
    "retrying": ("ok", "Processing will be tried again."),
    "uploaded": ("ok", "Uploaded. Processing has started; this page shows its progress."),
    "signed_in": ("ok", "You are signed in."),
    "signed_out": ("ok", "You are signed out."),
    "added": ("ok", "Added to the collection."),
    "removed": ("ok", "Removed from the collection."),
    "created": ("ok", "Collection created."),
    "welcome": ("ok", "Your administrator account is ready. Welcome!"),
    "user_updated": ("ok", "The user is updated."),
    "revoked": ("ok", "The token is revoked: it no longer works."),
    "commented": ("ok", "Your comment is posted."),
    "comment_deleted": ("ok", "The comment is deleted."),
    "note_saved": ("ok", "The note is saved."),
}


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["gremlin"]
    return rt


async def viewer() -> Viewer:
    """The signed-in user of this request (cached on `g`), or the visitor."""
    if "viewer" not in g:
        g.viewer = await page_auth.current_viewer()
    who: Viewer = g.viewer
    return who


async def require_signed_in() -> Viewer:
    who = await viewer()
    if not who.signed_in:
        raise SignInRequired()
    return who


async def require_admin() -> Viewer:
    who = await require_signed_in()
    if not who.is_admin:
        raise Forbidden("this page is for administrators")
    return who


class SignInRequired(GremlinError):
    status = 401
    code = "signin_required"

    def __init__(self) -> None:
        super().__init__("sign in to see this page")


def file_url(media_id: str, role: str) -> str:
    return page_auth.file_url(media_id, role)


def absolute(path: str) -> str:
    """An absolute URL for a site path: `base_url` if set, else this request's host."""
    base = runtime().settings.base_url.rstrip("/")
    if not base:
        base = request.host_url.rstrip("/")
    return base + path


Page = tuple[str, int, dict[str, str]]


async def page(template: str, status: int = 200, **context: Any) -> Page:
    """Render a page with the shared context (viewer, notices, maintenance banner)."""
    rt = runtime()
    done = request.args.get("done", "")
    body = await render_template(
        template,
        viewer=await viewer(),
        maintenance=rt.mode is Mode.MAINTENANCE,
        version=rt.version,
        site_name=SITE_NAME,
        notices=[NOTICES[done]] if done in NOTICES else [],
        **context,
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


async def warm_markdown(texts: Iterable[str | None]) -> None:
    """Render these Markdown texts in a worker thread, so that the page's `markdown` filter
    finds them in render's cache: a long list or many rules take seconds of CPU, which must
    not hold the event loop (every other request) while the page renders."""
    todo = [t for t in texts if t and t.strip()]
    if todo:
        await trio.to_thread.run_sync(lambda: [render.safe_markdown(t) for t in todo])


def redirect_to(endpoint: str, done: str | None = None, **values: Any) -> WerkzeugResponse:
    """303 See Other after a form post (so a reload does not post again)."""
    if done:
        values["done"] = done
    return redirect(url_for(endpoint, **values), 303)


async def error_page(e: GremlinError) -> ResponseReturnValue:
    if isinstance(e, SignInRequired):
        return redirect(url_for("account.signin", next=request.full_path.rstrip("?")), 303)
    if "viewer" not in g:
        try:
            await viewer()
        except GremlinError:  # a wrong bearer token: its 401 is what this page shows
            g.viewer = VISITOR
    headings = {
        400: "That request did not work",
        401: "Not signed in",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict",
        413: "Too large",
        415: "Unsupported file",
        429: "Too many attempts",
        503: "Paused for an upgrade",
    }
    headers = {"Retry-After": "5"} if e.status == 503 else {}
    body, status, base_headers = await page(
        "error.html",
        status=e.status,
        heading=headings.get(e.status, "Something went wrong"),
        message=e.message,
        hint=e.hint,
    )
    return body, status, {**base_headers, **headers}


def tag_redirect(endpoint: str, tag: str) -> WerkzeugResponse | None:
    """A 301 to the form tags are stored in (lowercase, NFKC) when `tag` was typed otherwise."""
    stored = normalise_tags([tag])
    if stored and stored[0] != tag:
        return redirect(url_for(endpoint, tag=stored[0]), 301)
    return None


def not_found(what: str = "page") -> NotFound:
    return NotFound(f"there is no such {what}", hint="It may have been deleted or made private.")


def install_template_helpers(app: Quart) -> None:
    env = app.jinja_env
    env.filters["date"] = render.human_date
    env.filters["isodate"] = render.iso_date
    env.filters["size"] = render.human_size
    env.filters["duration"] = render.human_duration
    env.filters["markdown"] = render.safe_markdown
    env.globals["file_url"] = file_url
    env.globals["tile_html"] = tiles.tile
    env.globals["csrf_token"] = page_auth.csrf_token
    env.globals["SITE_NAME"] = SITE_NAME

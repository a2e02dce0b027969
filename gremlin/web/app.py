"""The app factory: a quart-trio app over one Runtime."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio
from quart import Response, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map

from ..errors import GremlinError
from ..runtime import Runtime
from ..store import latest
from .api import register as register_api
from .auth import init_auth
from .bodies import SMALL_BODY_BYTES, UNREAD_BODY_SECONDS, StreamingHTTPConnection
from .legacy import register as register_legacy
from .maintenance_page import install_maintenance_page
from .pages import register as register_pages
from .proxies import trust_proxies
from .queries import SQLITE_MAX_INT

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, *, hint: str | None = None, **headers: str
) -> Response:
    error = {"code": code, "message": message}
    if hint:
        error["hint"] = hint
    response = jsonify({"error": error})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    if status == 401:  # RFC 9110: a 401 names the scheme that would work
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="contentgremlin"')
    return response


class SqliteInt(IntegerConverter):
    """`<int:...>` within SQLite's integers: a larger id in a path is a 404, not a 500."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", SQLITE_MAX_INT)
        super().__init__(url_map, *args, **kwargs)


def create_app(runtime: Runtime) -> QuartTrio:
    app = QuartTrio(__name__)
    app.url_map.converters["int"] = SqliteInt  # before any route is added
    app.config.update(
        RESPONSE_TIMEOUT=None,  # long downloads must not be cut
        BODY_TIMEOUT=None,
        BACKGROUND_TASK_SHUTDOWN_TIMEOUT=0,
        # Uploads are streamed by views marked `streams_body`, with their own limits; any other
        # body (forms, JSON) is small, and this caps what Quart buffers for it.
        MAX_CONTENT_LENGTH=SMALL_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.extensions["gremlin"] = runtime
    app.asgi_http_class = StreamingHTTPConnection  # streamed bodies bypass Quart's buffer
    # The client's address and scheme from a trusted reverse proxy (gremlin.web.proxies)
    proxies = runtime.settings.trusted_proxy_networks()
    app.asgi_app = trust_proxies(app.asgi_app, proxies)  # type: ignore[method-assign]
    install_maintenance_page(app)  # before init_auth: a refused post's body is never read
    init_auth(app)
    register_api(app)  # JSON API, tus uploads, files, OpenAPI (gremlin.web.api)
    register_pages(app)  # HTML pages, feeds, oEmbed, admin panel (gremlin.web.pages)
    register_legacy(app)  # 301s from imported MediaGoblin URLs (gremlin.web.legacy)

    @app.get("/healthz")
    async def healthz() -> Any:
        """Up, in which mode; 503 once a query has met a damaged database (pages may still
        answer from what is intact, so a monitor must hear it here)."""
        damage = runtime.store.damage
        health = {
            "status": "damaged" if damage else "ok",
            "mode": runtime.mode.value,
            "version": runtime.version,
            "schema_version": latest(),
            "pid": runtime.me.pid,
        }
        if damage:
            return {**health, "error": f"the database is damaged: {damage}"}, 503
        return health

    @app.after_request
    async def read_unread_body(response: Response) -> Response:
        """Read what is left of a small body the app answered without reading (a refusal, a
        404; see bodies.UNREAD_BODY_SECONDS). Quart buffers such bodies anyway
        (MAX_CONTENT_LENGTH); streamed views' bodies are not Quart's."""
        length = request.content_length
        if length and length <= (app.config["MAX_CONTENT_LENGTH"] or 0):
            with trio.move_on_after(UNREAD_BODY_SECONDS), contextlib.suppress(HTTPException):
                await request.get_data()
        return response

    @app.errorhandler(GremlinError)
    async def handled(e: GremlinError) -> Response:
        retry_after = getattr(e, "retry_after", 5 if e.status == 503 else None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return error_response(e.status, e.code, e.message, hint=e.hint, **headers)

    @app.errorhandler(HTTPException)
    async def http_error(e: HTTPException) -> Response:
        status = e.code or 500
        response = error_response(
            status, (e.name or "error").lower().replace(" ", "_"), e.description or ""
        )
        for name, value in e.get_headers():  # a 405's Allow
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    return app

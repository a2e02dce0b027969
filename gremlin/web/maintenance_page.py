"""The HTML face of the maintenance gate: a browser's form post refused during an upgrade
gets a 503 page in the site's layout (with the banner), never the JSON error.

The gate (gremlin.web.maintenance) marks such a request in its ASGI scope; the hook below,
installed before every other one, answers it before the session's CSRF check reads the body
and before any view runs. Same status and Retry-After as the JSON answer.
"""

from __future__ import annotations

import logging

from quart import Quart, g, request
from quart.typing import ResponseReturnValue

from ..errors import GremlinError, Maintenance
from .maintenance import REFUSED_KEY, RETRY_AFTER_SECONDS
from .pageutil import page
from .queries import VISITOR
from .sessions import load_session

log = logging.getLogger(__name__)


async def refuse_with_page() -> ResponseReturnValue | None:
    if not request.scope.get(REFUSED_KEY):
        return None
    error = Maintenance()
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    try:
        await load_session()  # the header shows who is signed in, as on any page
    except GremlinError:  # no session secret yet, and the store is frozen: a visitor's page
        g.gremlin_session, g.gremlin_session_dirty, g.viewer = {}, False, VISITOR
    try:
        body, status, base = await page(
            "error.html",
            status=error.status,
            heading="Paused for an upgrade",
            message=error.message,
            hint=error.hint,
        )
    except Exception:  # the page is a courtesy; the 503 is what must not fail
        log.exception("maintenance page failed; answering JSON path=%s", request.path)
        from .app import error_response

        return error_response(
            error.status, error.code, error.message, Retry_After=headers["Retry-After"]
        )
    return body, status, {**base, **headers}


def install_maintenance_page(app: Quart) -> None:
    """Answer gate-refused HTML requests first (call before any other before_request hook)."""
    app.before_request(refuse_with_page)
    app.extensions[REFUSED_KEY] = True

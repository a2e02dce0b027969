"""The session cookie: an itsdangerous-signed payload, no server-side state.

The payload is {"c": csrf token} for a visitor, plus {"u": user id, "p": password tag} once
signed in. The signing secret is created on first use and kept in the database `meta` table
(key `session_secret`), so sessions survive restarts and upgrades (the copy keeps `meta`).
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

import itsdangerous
from quart import Response, current_app, g, request

from ..runtime import Runtime

SESSION_COOKIE = "gremlin_session"
SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600


def get_runtime() -> Runtime:
    return current_app.extensions["gremlin"]


def _get_or_create_secret(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'session_secret'").fetchone()
    if row is not None:
        return str(row["value"])
    value = secrets.token_hex(32)
    conn.execute("INSERT INTO meta (key, value) VALUES ('session_secret', ?)", (value,))
    return value


def _read_secret(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'session_secret'").fetchone()
    return None if row is None else str(row["value"])


async def ensure_serializer() -> itsdangerous.URLSafeTimedSerializer:
    cached = current_app.extensions.get("gremlin.session_serializer")
    if cached is None:
        store = get_runtime().store
        secret = await store.read(_read_secret)
        if secret is None:
            secret = await store.write(_get_or_create_secret)
        cached = itsdangerous.URLSafeTimedSerializer(secret, salt="gremlin.session")
        current_app.extensions["gremlin.session_serializer"] = cached
    return cached


def session() -> dict[str, Any]:
    """This request's session payload: {"c": csrf} and, signed in, {"u": id, "p": tag}."""
    return g.gremlin_session


def save_session(payload: dict[str, Any] | None) -> None:
    g.gremlin_session = payload or {}
    g.gremlin_session_dirty = True


async def load_session() -> None:
    serializer = await ensure_serializer()
    g.gremlin_serializer = serializer
    g.gremlin_session = {}
    g.gremlin_session_dirty = False
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            payload = serializer.loads(raw, max_age=SESSION_MAX_AGE_SECONDS)
        except itsdangerous.BadData:
            payload = None
        if isinstance(payload, dict):
            g.gremlin_session = payload


async def write_session_cookie(response: Response) -> Response:
    if not getattr(g, "gremlin_session_dirty", False):
        return response
    settings = get_runtime().settings
    payload = session()
    if not payload:
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    response.set_cookie(
        SESSION_COOKIE,
        g.gremlin_serializer.dumps(payload),
        max_age=SESSION_MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies or request.scheme == "https",  # https, or a proxy's
    )
    response.headers.add("Vary", "Cookie")
    return response

"""Who is asking: session cookies, API tokens, CSRF, sign-in throttling, first-run setup.

How pages (and every other view) use it:

    from gremlin.web.auth import (current_user, login_required, admin_required, csrf_token,
                                  authenticate, sign_in, sign_out, get_runtime)

    @bp.get("/upload")
    @login_required                  # pages: redirect to /signin?next=...; /api/...: 401 JSON
    async def upload_page():
        user = await current_user()  # a User, or None for a visitor (cached per request)
        ...

    # In every form (csrf_token is also a Jinja global):
    #     <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    # JavaScript sends the same value as the `X-CSRF-Token` header; put it in a
    #     <meta name="csrf-token" content="{{ csrf_token() }}">.
    # Every unsafe request (POST, PUT, PATCH, DELETE) without `Authorization: Bearer` is refused
    # with 403 {"error": {"code": "csrf"}} unless it carries the token (header, form field or
    # `?csrf_token=` query). /api/ requests with no session cookie skip the check (they get a 401).

    # Sign-in POST:   user = await authenticate(name, password)  # 401 / 403 disabled / 429
    #                 sign_in(user); return redirect(next)
    # Sign-out POST:  sign_out(); return redirect("/")
    # First run:      await setup_token_valid(token); await create_first_admin(token, name, pw)

Sessions are itsdangerous-signed cookies (no server-side state); the secret lives in the
database `meta` table (key `session_secret`), created on first use. A session is bound to the
user's password hash: changing the password signs every session out. Disabled users are
signed out on their next request and their tokens stop working.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import trio
from quart import Quart, current_app, g, redirect, request

from ..accounts import create_user, hash_password, token_hash, verify_password
from ..errors import BadRequest, Forbidden, Maintenance, NotFound, Unauthorized
from ..runtime import Runtime
from . import signin
from .sessions import (
    SESSION_COOKIE,
    ensure_serializer,
    get_runtime,
    load_session,
    save_session,
    session,
    write_session_cookie,
)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SIGNIN_PATH = "/signin"
TOKEN_TOUCH_SECONDS = 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_FORM_BYTES = 1024 * 1024  # non-streamed form bodies


V = TypeVar("V", bound=Callable[..., Awaitable[Any]])


class CsrfRefused(Forbidden):
    code = "csrf"


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool
    quota_bytes: int | None
    password_tag: str  # binds sessions to the current password hash

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> User:
        return cls(
            id=row["id"],
            name=row["name"],
            is_admin=bool(row["is_admin"]),
            quota_bytes=row["quota_bytes"],
            password_tag=_password_tag(row["password_hash"]),
        )


def _password_tag(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def base_url() -> str:
    """The site's public URL without a trailing slash (settings.base_url, else the request's)."""
    return (get_runtime().settings.base_url or request.host_url).rstrip("/")


def is_api_request() -> bool:
    return request.path.startswith("/api/")


# -- who is asking ---------------------------------------------------------------------------


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _user_by_id(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE id = ? AND disabled = 0", (user_id,)).fetchone()


def _token_user(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    """accounts.user_for_token, plus the token's id and when it was last used."""
    return conn.execute(
        "SELECT users.*, tokens.id AS token_id, tokens.last_used_at AS token_last_used_at"
        " FROM tokens JOIN users ON users.id = tokens.user_id"
        " WHERE tokens.token_hash = ? AND tokens.revoked_at IS NULL AND users.disabled = 0",
        (token_hash(token),),
    ).fetchone()


def _touch_token(conn: sqlite3.Connection, token_id: int, now: float) -> None:
    conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))


async def _note_token_use(token_id: int, last_used_at: float | None) -> None:
    """Record when a token was last used (for the tokens page), at most once an hour."""
    now = time.time()
    store = get_runtime().store
    if (last_used_at is None or now - last_used_at > TOKEN_TOUCH_SECONDS) and not store.frozen:
        with contextlib.suppress(Maintenance):  # frozen meanwhile: a read must still work
            await store.write(_touch_token, token_id, now)


async def current_user() -> User | None:
    """The signed-in user (bearer token first, then the session), or None. Cached per request.

    A bearer token that is wrong, revoked or belongs to a disabled user is a 401, never a
    silent fall back to "visitor"."""
    if hasattr(g, "gremlin_user"):
        return g.gremlin_user
    store = get_runtime().store
    user: User | None = None
    token = _bearer_token()
    if token is not None:
        row = await store.read(_token_user, token)
        if row is None:
            raise Unauthorized(
                "the API token is not valid (wrong, revoked, or its user is disabled)",
                hint="Create a new one: gremlin token SITE NAME",
            )
        user = User.from_row(row)
        await _note_token_use(row["token_id"], row["token_last_used_at"])
    elif (user_id := session().get("u")) is not None:
        row = await store.read(_user_by_id, int(user_id))
        if row is not None and _password_tag(row["password_hash"]) == session().get("p"):
            user = User.from_row(row)
        else:
            save_session({"c": session().get("c")} if session().get("c") else None)
    g.gremlin_user = user
    return user


async def require_user() -> User:
    user = await current_user()
    if user is None:
        raise Unauthorized("sign in first, or send `Authorization: Bearer TOKEN`")
    return user


def login_required(view: V) -> V:
    """Visitors get a 401 JSON error under /api/ and a redirect to the sign-in page elsewhere."""

    @functools.wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if await current_user() is None:
            if is_api_request():
                raise Unauthorized("sign in first, or send `Authorization: Bearer TOKEN`")
            return redirect(f"{SIGNIN_PATH}?next={quote(request.full_path.rstrip('?'))}")
        return await view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: V) -> V:
    """Like login_required, then 403 for members who are not admins."""

    @functools.wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = await current_user()
        if user is None and not is_api_request():
            return redirect(f"{SIGNIN_PATH}?next={quote(request.full_path.rstrip('?'))}")
        if user is None:
            raise Unauthorized("sign in first, or send `Authorization: Bearer TOKEN`")
        if not user.is_admin:
            raise Forbidden("only an admin may do this")
        return await view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- CSRF ------------------------------------------------------------------------------------


def csrf_token() -> str:
    """The token forms embed (creates an anonymous session cookie on first use)."""
    payload = session()
    if not payload.get("c"):
        save_session({**payload, "c": secrets.token_urlsafe(24)})
    return str(session()["c"])


def csrf_ok(given: str | None) -> bool:
    expected = session().get("c")
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


def csrf_pending() -> bool:
    """True while a streamed form still owes its token (it must come before the file part)."""
    return bool(getattr(g, "gremlin_csrf_pending", False))


def accept_csrf_field(value: str) -> None:
    """A streamed body's `csrf_token` field arrived: check it (raises CsrfRefused)."""
    if not csrf_ok(value):
        raise CsrfRefused("the form's security token is missing or stale; reload the page")
    g.gremlin_csrf_pending = False


def streams_body(view: V) -> V:
    """Mark a view that reads the raw ASGI body itself (see gremlin.web.bodies)."""
    view.gremlin_streams_body = True  # type: ignore[attr-defined]
    return view


async def _check_csrf() -> None:
    if request.method in SAFE_METHODS or _bearer_token() is not None:
        return
    if request.routing_exception is not None:
        return  # no view will run: the 404 or 405 (with its Allow) says more than a 403
    if is_api_request() and request.cookies.get(SESSION_COOKIE) is None:
        return  # no ambient credential to abuse; the view will answer 401
    given = request.headers.get(CSRF_HEADER) or request.args.get(CSRF_FIELD)
    view = current_app.view_functions.get(request.endpoint or "")
    if given is None and getattr(view, "gremlin_streams_body", False):
        g.gremlin_csrf_pending = True  # the streamed form's field is checked as it arrives
        return
    if given is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        if (request.content_length or 0) > MAX_FORM_BYTES:
            raise BadRequest("form bodies must be under 1 MiB (files go to /api/v1/media)")
        given = (await request.form).get(CSRF_FIELD)
    if not csrf_ok(given):
        raise CsrfRefused("the form's security token is missing or stale; reload the page")


# -- signing in ------------------------------------------------------------------------------


def _limiter() -> signin.SigninLimiter:
    limiter = current_app.extensions.get("gremlin.signin_limiter")
    if limiter is None:
        limiter = signin.SigninLimiter(get_runtime().settings.signin_attempts_per_minute)
        current_app.extensions["gremlin.signin_limiter"] = limiter
    return limiter


async def authenticate(name: str, password: str) -> User:
    """Check a name and password (rehashing old hashes). Raises 401, 403 (disabled) or 429."""
    runtime = get_runtime()
    addr = request.remote_addr or "?"
    limiter = _limiter()
    wait = limiter.retry_after(addr, time.monotonic())
    if wait is not None:
        raise signin.SigninThrottled(wait)
    row = await runtime.store.read(signin.user_row_by_name, name)
    stored = row["password_hash"] if row is not None else None
    ok, new_hash = await trio.to_thread.run_sync(
        lambda: verify_password(stored or signin.dummy_hash(), password)
    )
    if row is None or not stored or not ok:
        limiter.failed(addr, time.monotonic())
        raise Unauthorized("wrong name or password")
    if row["disabled"]:
        raise signin.AccountDisabled("this account is disabled", hint="Ask the site's admin.")
    if not runtime.store.frozen:
        await runtime.store.write(signin.record_signin, row["id"], new_hash)
    user = User.from_row(row)
    if new_hash is not None and not runtime.store.frozen:
        user = dataclasses.replace(user, password_tag=_password_tag(new_hash))
    return user


def sign_in(user: User) -> None:
    """Start a session for `user` on this response (a fresh CSRF token too)."""
    save_session({"u": user.id, "p": user.password_tag, "c": secrets.token_urlsafe(24)})
    g.gremlin_user = user


def sign_out() -> None:
    save_session(None)
    g.gremlin_user = None


# -- first run -------------------------------------------------------------------------------


async def first_run_link(runtime: Runtime, url: str) -> str | None:
    """When no admin exists: the one-time link that creates one (`serve` prints it)."""
    token = await runtime.store.write(signin.setup_token_for_link)
    if token is None:
        return None
    base = (runtime.settings.base_url or url).rstrip("/")
    return f"{base}/setup/{token}"


async def setup_token_valid(token: str) -> bool:
    return await get_runtime().store.read(signin.setup_token_matches, token)


async def create_first_admin(token: str, name: str, password: str) -> User:
    """Create the admin with the one-time setup token, which is then spent. Signs them in."""
    signin.check_password_rules(password)
    hashed = await trio.to_thread.run_sync(hash_password, password)

    def create(conn: sqlite3.Connection) -> sqlite3.Row:
        if not signin.setup_token_matches(conn, token):
            raise NotFound("this setup link is not valid (already used, or an admin exists)")
        user_id = create_user(conn, name, hashed, is_admin=True)
        conn.execute("DELETE FROM meta WHERE key = 'setup_token'")
        return conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()

    user = User.from_row(await get_runtime().store.write(create))
    sign_in(user)
    return user


# -- wiring ----------------------------------------------------------------------------------


def init_auth(app: Quart) -> None:
    """Install the hooks: load the session, check CSRF, write the cookie back."""

    @app.before_serving
    async def _secret_before_serving() -> None:
        # Made (a write) at start-up, not on the first request: a server that enters
        # maintenance before serving anything must still answer reads.
        await ensure_serializer()

    @app.before_request
    async def _auth_before() -> None:
        await load_session()
        await _check_csrf()

    app.after_request(write_session_cookie)
    app.jinja_env.globals["csrf_token"] = csrf_token

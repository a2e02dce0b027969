"""Signing in and out, and the first-run page that creates the admin account."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from quart import Blueprint, redirect, request
from quart.typing import ResponseReturnValue

from ..accounts import create_token
from ..errors import GremlinError
from . import auth
from .pageutil import (
    error_page,
    not_found,
    page,
    redirect_to,
    require_signed_in,
    runtime,
    viewer,
)

bp = Blueprint("account", __name__)
bp.register_error_handler(GremlinError, error_page)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no //host, no backslash tricks). Whitespace and
    control characters are refused too: browsers drop a tab or newline from a Location, so
    `/<TAB>/evil.example` would lead to //evil.example (and a newline cannot be a header)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if not target.isprintable() or any(c.isspace() for c in target):
        return "/"
    return target


@bp.get("/signin")
async def signin() -> ResponseReturnValue:
    if (await viewer()).signed_in:
        return redirect(safe_next(request.args.get("next")), 303)
    return await page("signin.html", next=safe_next(request.args.get("next")), name="")


@bp.post("/signin")
async def signin_post() -> ResponseReturnValue:
    form = await request.form
    name = form.get("name", "").strip()
    target = safe_next(form.get("next"))
    try:
        user = await auth.authenticate(name, form.get("password", ""))
    except GremlinError as e:
        headers = {"Retry-After": str(e.retry_after)} if hasattr(e, "retry_after") else {}
        body, status, base = await page(
            "signin.html", status=e.status, next=target, name=name, error=e.message, hint=e.hint
        )
        return body, status, {**base, **headers}
    auth.sign_in(user)
    sep = "&" if "?" in target else "?"
    return redirect(f"{target}{sep}done=signed_in" if target == "/" else target, 303)


@bp.post("/signout")
async def signout() -> ResponseReturnValue:
    auth.sign_out()
    return redirect_to("pages.home", done="signed_out")


@bp.get("/setup/<token>")
async def setup(token: str) -> ResponseReturnValue:
    if not await auth.setup_token_valid(token):
        raise not_found("setup link (it was used already, or an admin exists)")
    return await page("setup.html", token=token, name="")


@bp.post("/setup/<token>")
async def setup_post(token: str) -> ResponseReturnValue:
    form = await request.form
    name = form.get("name", "").strip()
    password = form.get("password", "")
    if password != form.get("password2", ""):
        return await page(
            "setup.html", status=400, token=token, name=name, error="The passwords differ."
        )
    try:
        user = await auth.create_first_admin(token, name, password)
    except GremlinError as e:
        if e.status == 404:
            raise
        return await page(
            "setup.html", status=e.status, token=token, name=name, error=e.message, hint=e.hint
        )
    return redirect_to("pages.gallery", done="welcome", name=user.name)


# -- API tokens --------------------------------------------------------------------------------


def my_tokens(conn: sqlite3.Connection, user_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, label, created_at, last_used_at, revoked_at FROM tokens"
            " WHERE user_id = ? ORDER BY revoked_at IS NOT NULL, created_at DESC",
            (user_id,),
        )
    ]


def revoke_token(conn: sqlite3.Connection, user_id: int, token_id: int) -> None:
    cur = conn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        (time.time(), token_id, user_id),
    )
    if cur.rowcount == 0:
        raise not_found("token of yours")


@bp.get("/account/tokens")
async def tokens() -> ResponseReturnValue:
    who = await require_signed_in()
    rows = await runtime().store.read(my_tokens, who.user_id)
    return await page("tokens.html", tokens=rows, new_token=None)


@bp.post("/account/tokens")
async def tokens_create() -> ResponseReturnValue:
    who = await require_signed_in()
    label = " ".join((await request.form).get("label", "").split())[:80]
    token = await runtime().store.write(create_token, who.user_id, label)
    rows = await runtime().store.read(my_tokens, who.user_id)
    # Shown once, in this response only (never stored: only its hash is).
    return await page("tokens.html", status=201, tokens=rows, new_token=token, label=label)


@bp.post("/account/tokens/<int:token_id>/revoke")
async def tokens_revoke(token_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    await runtime().store.write(revoke_token, who.user_id, token_id)
    return redirect_to("account.tokens", done="revoked")

"""Sessions, bearer tokens, CSRF, sign-in throttling and first-run setup, in process."""

from __future__ import annotations

from typing import Any

from quart import request
from quart_trio import QuartTrio

from gremlin.runtime import Runtime
from gremlin.web import auth
from gremlin.web.signin import SigninLimiter

from .conftest import PASSWORD, add_user, bearer


def add_probe_routes(app: QuartTrio) -> None:
    """Tiny views standing in for the sign-in page and a form, using only auth's helpers."""

    @app.post("/t/signin")
    async def signin() -> Any:
        form = await request.form
        user = await auth.authenticate(form["name"], form["password"])
        auth.sign_in(user)
        return {"signed_in": user.name}

    @app.post("/t/signout")
    async def signout() -> Any:
        auth.sign_out()
        return {"signed_out": True}

    @app.get("/t/me")
    async def me() -> Any:
        user = await auth.current_user()
        return {"name": user.name if user else None, "csrf": auth.csrf_token()}

    @app.post("/t/form")
    @auth.login_required
    async def form() -> Any:
        return {"ok": True}

    @app.get("/t/admin")
    @auth.admin_required
    async def admin() -> Any:
        return {"ok": True}


async def _csrf(client: Any) -> str:
    return (await (await client.get("/t/me")).get_json())["csrf"]


async def sign_in(client: Any, name: str, password: str = PASSWORD) -> Any:
    token = await _csrf(client)
    return await client.post(
        "/t/signin", form={"name": name, "password": password, "csrf_token": token}
    )


async def test_session_sign_in_csrf_and_sign_out(app: QuartTrio, runtime: Runtime) -> None:
    await add_user(runtime.store, "alice")
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        # A form post without any session or token is refused (login CSRF included).
        refused = await client.post("/t/signin", form={"name": "alice", "password": PASSWORD})
        assert refused.status_code == 403, await refused.get_data()
        assert (await refused.get_json())["error"]["code"] == "csrf"

        response = await sign_in(client, "alice")
        assert response.status_code == 200, await response.get_data()
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        assert (await (await client.get("/t/me")).get_json())["name"] == "alice"

        # Signed in: a form without the token is refused, with it accepted.
        assert (await client.post("/t/form", form={"x": "1"})).status_code == 403
        token = await _csrf(client)
        assert (await client.post("/t/form", form={"csrf_token": "nope"})).status_code == 403
        assert (await client.post("/t/form", form={"csrf_token": token})).status_code == 200
        ok = await client.post("/t/form", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200

        await client.post("/t/signout", headers={"X-CSRF-Token": token})
        assert (await (await client.get("/t/me")).get_json())["name"] is None
        assert (await client.get("/t/admin")).status_code == 302


async def test_wrong_password_disabled_user_and_throttle(app: QuartTrio, runtime: Runtime) -> None:
    alice_id, _ = await add_user(runtime.store, "alice")
    await add_user(runtime.store, "bob")
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await sign_in(client, "alice", "wrong password")).status_code == 401
        assert (await sign_in(client, "nobody", "wrong password")).status_code == 401

        await runtime.store.write(
            lambda c: c.execute("UPDATE users SET disabled = 1 WHERE id = ?", (alice_id,))
        )
        refused = await sign_in(client, "alice")
        assert refused.status_code == 403, await refused.get_data()
        assert (await refused.get_json())["error"]["code"] == "account_disabled"

        limit = runtime.settings.signin_attempts_per_minute
        for _ in range(limit - 2):
            assert (await sign_in(client, "bob", "bad")).status_code == 401
        throttled = await sign_in(client, "bob")  # even the right password, for now
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1


async def test_disabling_a_user_ends_session_and_token(app: QuartTrio, runtime: Runtime) -> None:
    alice_id, token = await add_user(runtime.store, "alice")
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await sign_in(client, "alice")
        assert (await (await client.get("/t/me", headers=bearer(token))).get_json())["name"]
        await runtime.store.write(
            lambda c: c.execute("UPDATE users SET disabled = 1 WHERE id = ?", (alice_id,))
        )
        assert (await (await client.get("/t/me")).get_json())["name"] is None
        assert (await client.get("/t/me", headers=bearer(token))).status_code == 401
        assert (await client.get("/t/me", headers=bearer("gt_made_up"))).status_code == 401


async def test_bearer_requests_skip_csrf_and_admin_check(app: QuartTrio, runtime: Runtime) -> None:
    _, member = await add_user(runtime.store, "member")
    _, admin = await add_user(runtime.store, "root", admin=True)
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.post("/t/form", headers=bearer(member))).status_code == 200
        assert (await client.get("/t/admin", headers=bearer(member))).status_code == 403
        assert (await client.get("/t/admin", headers=bearer(admin))).status_code == 200


async def test_first_run_link_creates_one_admin(app: QuartTrio, runtime: Runtime) -> None:
    link = await auth.first_run_link(runtime, "http://127.0.0.1:9")
    assert link is not None and link.startswith("http://127.0.0.1:9/setup/")
    token = link.rsplit("/", 1)[1]
    assert await auth.first_run_link(runtime, "http://x") == link.replace("127.0.0.1:9", "x")

    @app.post("/t/setup/<token>")
    async def setup(token: str) -> Any:
        form = await request.form
        user = await auth.create_first_admin(token, form["name"], form["password"])
        return {"admin": user.is_admin}

    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        csrf = await _csrf(client)
        form = {"name": "root", "password": PASSWORD, "csrf_token": csrf}
        wrong = await client.post("/t/setup/not-it", form=form)
        assert wrong.status_code == 404, await wrong.get_data()
        made = await client.post(f"/t/setup/{token}", form=form)
        assert made.status_code == 200 and (await made.get_json())["admin"] is True
        assert (await (await client.get("/t/me")).get_json())["name"] == "root"
        fresh = {**form, "name": "root2", "csrf_token": await _csrf(client)}  # rotated at sign-in
        again = await client.post(f"/t/setup/{token}", form=fresh)
        assert again.status_code == 404
    assert await auth.first_run_link(runtime, "http://x") is None


def test_signin_limiter_window() -> None:
    limiter = SigninLimiter(per_minute=2)
    assert limiter.retry_after("a", 0.0) is None
    limiter.failed("a", 0.0)
    limiter.failed("a", 10.0)
    assert limiter.retry_after("a", 11.0) == 49.0
    assert limiter.retry_after("b", 11.0) is None
    assert limiter.retry_after("a", 60.5) is None  # the first failure left the window


async def test_token_use_is_recorded(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    add_probe_routes(app)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.get("/t/me", headers=bearer(token))).status_code == 200
    used = await runtime.store.read(
        lambda c: c.execute("SELECT last_used_at FROM tokens").fetchone()[0]
    )
    assert used is not None

"""During maintenance a browser's form post gets a 503 page in the site's layout; JSON
clients keep the JSON error. Both through the real gate, with the same Retry-After."""

from __future__ import annotations

import httpx
import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime
from gremlin.web.maintenance import RETRY_AFTER_SECONDS, maintenance_gate, prefers_html

from .conftest import add_user
from .pageclient import CSRF_RE, PASSWORD
from .pagedata import media

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def scope(path: str, accept: str | None) -> dict:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


@pytest.mark.parametrize(
    ("path", "accept", "html"),
    [
        ("/m/x/comments", BROWSER, True),
        ("/m/x/comments", "text/html", True),
        ("/m/x/comments", "application/json, text/html;q=0.5", False),
        ("/m/x/comments", "application/json", False),
        ("/m/x/comments", "*/*", False),
        ("/m/x/comments", "text/html, application/json", False),  # a tie: JSON
        ("/m/x/comments", None, False),
        ("/api/v1/media", BROWSER, False),
        ("/files/x/thumb", BROWSER, False),
    ],
)
def test_prefers_html(path: str, accept: str | None, html: bool) -> None:
    assert prefers_html(scope(path, accept)) is html  # type: ignore[arg-type]


async def test_maintenance_html_page_for_browsers_json_for_the_rest(
    app: QuartTrio, runtime: Runtime
) -> None:
    uid, _ = await add_user(runtime.store, "ann")
    mid = await media(runtime.store, uid, title="Quiet harbour")
    async with app.test_app():
        transport = httpx.ASGITransport(app=maintenance_gate(app, runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/signin")
            token = CSRF_RE.search(page.text)
            assert token
            signin = {"name": "ann", "password": PASSWORD, "csrf_token": token.group(1)}
            r = await client.post("/signin", data=signin, headers={"Accept": BROWSER})
            assert r.status_code == 303
            token = CSRF_RE.search((await client.get(f"/m/{mid}")).text)  # a new session's
            assert token
            runtime.set_mode(Mode.MAINTENANCE)
            form = {"body": "hello", "csrf_token": token.group(1)}
            for path in (f"/m/{mid}/comments", "/no/such/path", "/upload"):
                r = await client.post(path, data=form, headers={"Accept": BROWSER})
                assert r.status_code == 503, path
                assert r.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
                assert r.headers["Content-Type"].startswith("text/html")
                assert "Content-Security-Policy" in r.headers
                assert "being upgraded" in r.text  # the banner
                assert "Paused for an upgrade" in r.text and "Try again in a few seconds" in r.text
                assert ">ann</a>" in r.text  # the same layout, signed in
            for accept in ("application/json", "*/*", None):
                headers = {"Accept": accept} if accept else {}
                r = await client.post(f"/m/{mid}/comments", data=form, headers=headers)
                assert r.status_code == 503
                assert r.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
                assert r.json()["error"]["code"] == "maintenance"
            r = await client.post("/api/v1/media", headers={"Accept": BROWSER})
            assert r.status_code == 503 and r.json()["error"]["code"] == "maintenance"
            assert (await client.get(f"/m/{mid}")).status_code == 200  # reads go on
            count = await runtime.store.read(
                lambda c: c.execute("SELECT count(*) FROM comments").fetchone()[0]
            )
            assert count == 0
            runtime.set_mode(Mode.NORMAL)
            r = await client.post(f"/m/{mid}/comments", data=form, headers={"Accept": BROWSER})
            assert r.status_code == 303


async def test_an_app_without_maintenance_pages_gets_json(runtime: Runtime) -> None:
    async def bare(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"written"})

    transport = httpx.ASGITransport(app=maintenance_gate(bare, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        runtime.set_mode(Mode.MAINTENANCE)
        r = await client.post("/x", headers={"Accept": BROWSER})
        assert r.status_code == 503 and r.json()["error"]["code"] == "maintenance"
        assert r.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)

"""Behind a reverse proxy (`trusted_proxies`): each client has its own sign-in throttle and the
scheme it used, taken from X-Forwarded-For / -Proto only when the peer is a trusted proxy."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from gremlin.errors import SettingsError
from gremlin.runtime import Runtime
from gremlin.settings import Settings, load
from gremlin.store import Site
from gremlin.web.app import create_app
from gremlin.web.proxies import forwarded_client, forwarded_scheme

from .conftest import PASSWORD, add_user
from .pageclient import CSRF_RE

PROXY = ("127.0.0.1", 40000)  # the TCP peer every request comes from: nginx on this host


@asynccontextmanager
async def site_behind(runtime: Runtime, trusted: str) -> AsyncIterator[httpx.ASGITransport]:
    settings = dataclasses.replace(runtime.settings, trusted_proxies=trusted)
    app = create_app(dataclasses.replace(runtime, settings=settings))
    async with app.test_app():
        yield httpx.ASGITransport(app=app, client=PROXY)


async def sign_in(
    transport: httpx.ASGITransport, forwarded_for: str, password: str
) -> httpx.Response:
    """One browser (its own cookies) behind the proxy: GET the form, POST it."""
    headers = {"X-Forwarded-For": forwarded_for}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://site", headers=headers
    ) as browser:
        token = CSRF_RE.search((await browser.get("/signin")).text)
        assert token
        form = {"name": "ann", "password": password, "csrf_token": token.group(1)}
        return await browser.post("/signin", data=form)


async def test_each_client_behind_a_trusted_proxy_has_its_own_signin_throttle(
    runtime: Runtime,
) -> None:
    await add_user(runtime.store, "ann")
    limit = runtime.settings.signin_attempts_per_minute
    async with site_behind(runtime, "127.0.0.1, 10.0.0.0/8") as transport:
        for _ in range(limit):
            assert (await sign_in(transport, "203.0.113.5", "wrong")).status_code == 401
        assert (await sign_in(transport, "203.0.113.5", PASSWORD)).status_code == 429
        # Another visitor through the same proxy is not locked out.
        assert (await sign_in(transport, "198.51.100.7", PASSWORD)).status_code == 303
        # What the client writes itself (left of what the proxies appended) changes nothing:
        # the rightmost address that is not a trusted proxy (10.1.2.3 is one) is the client.
        spoofed = await sign_in(transport, "192.0.2.99, 203.0.113.5, 10.1.2.3", PASSWORD)
        assert spoofed.status_code == 429


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(runtime: Runtime) -> None:
    await add_user(runtime.store, "ann")
    limit = runtime.settings.signin_attempts_per_minute
    for trusted in ("", "10.0.0.1"):  # none, or another proxy than the peer
        async with site_behind(runtime, trusted) as transport:
            for n in range(limit):
                assert (await sign_in(transport, f"203.0.113.{n}", "wrong")).status_code == 401
            throttled = await sign_in(transport, "198.51.100.7", PASSWORD)
            assert throttled.status_code == 429, trusted  # one address: the peer's (a new app)


async def test_the_scheme_a_trusted_proxy_forwards_makes_cookies_secure(
    runtime: Runtime,
) -> None:
    async def session_cookie(transport: httpx.ASGITransport, headers: dict[str, str]) -> str:
        async with httpx.AsyncClient(transport=transport, base_url="http://site") as browser:
            page = await browser.get("/signin", headers=headers)
            assert page.status_code == 200
            return page.headers["Set-Cookie"]

    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    async with site_behind(runtime, "127.0.0.1") as transport:
        assert "secure" in (await session_cookie(transport, https)).lower()
        assert "secure" not in (await session_cookie(transport, {})).lower()
        plain = {"X-Forwarded-Proto": "http"}
        assert "secure" not in (await session_cookie(transport, plain)).lower()
    async with site_behind(runtime, "") as transport:
        assert "secure" not in (await session_cookie(transport, https)).lower()


async def test_absolute_links_use_the_forwarded_scheme(runtime: Runtime) -> None:
    async with site_behind(runtime, "127.0.0.1") as transport:
        client = httpx.AsyncClient(transport=transport, base_url="http://site")
        feed = await client.get("/feed.atom", headers={"X-Forwarded-Proto": "https"})
        assert feed.status_code == 200
        assert "https://site/" in feed.text and "http://site/" not in feed.text


@pytest.mark.parametrize(
    ("entries", "client"),
    [
        (["203.0.113.5"], "203.0.113.5"),
        (["192.0.2.1, 203.0.113.5"], "203.0.113.5"),  # the client wrote 192.0.2.1
        (["192.0.2.1", "203.0.113.5, 10.0.0.2"], "203.0.113.5"),  # two headers, two proxies
        (["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the farthest
        (["junk, 203.0.113.5"], "203.0.113.5"),
        (["203.0.113.5, junk"], None),  # a proxy would not append that
        (["[2001:db8::1]:443"], "2001:db8::1"),
        (["203.0.113.5:1234"], "203.0.113.5"),
        (["::ffff:203.0.113.5"], "203.0.113.5"),
        ([], None),
        ([" , "], None),
    ],
)
def test_forwarded_client(entries: list[str], client: str | None) -> None:
    trusted = Settings(trusted_proxies="10.0.0.0/8").trusted_proxy_networks()
    assert forwarded_client(entries, trusted) == client


def test_forwarded_scheme() -> None:
    assert forwarded_scheme(["https"]) == "https"
    assert forwarded_scheme(["http, HTTPS"]) == "https"  # the nearest proxy's word
    assert forwarded_scheme(["https, gopher"]) is None
    assert forwarded_scheme([]) is None


def test_trusted_proxies_setting(site: Site) -> None:
    (site.root / "gremlin.toml").write_text('trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n')
    networks = load(site.root, environ={}).trusted_proxy_networks()
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8"]
    with pytest.raises(SettingsError, match="trusted_proxies"):
        load(site.root, environ={"GREMLIN_TRUSTED_PROXIES": "nginx.local"})
    assert load(site.root, {"trusted_proxies": ""}, environ={}).trusted_proxy_networks() == ()

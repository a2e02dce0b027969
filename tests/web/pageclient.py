"""Signing in through the pages, as a browser would (GET the form, POST it with its token)."""

from __future__ import annotations

import re
from typing import Any

from quart_trio import QuartTrio

from .conftest import PASSWORD

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def text_of(response: Any) -> str:
    return await response.get_data(as_text=True)  # type: ignore[no-any-return]


async def csrf_from(client: Any, path: str = "/signin") -> str:
    page = await text_of(await client.get(path))
    m = CSRF_RE.search(page)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


async def signed_in(app: QuartTrio, name: str, password: str = PASSWORD) -> Any:
    client = app.test_client()
    token = await csrf_from(client)
    r = await client.post(
        "/signin", form={"name": name, "password": password, "csrf_token": token, "next": "/"}
    )
    assert r.status_code == 303, await text_of(r)
    return client


async def post_form(client: Any, path: str, form: dict[str, str], token_from: str = "/") -> Any:
    """POST `form` with the CSRF token of this client's session."""
    token = await csrf_from(client, token_from)
    return await client.post(path, form={**form, "csrf_token": token})

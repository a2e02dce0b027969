"""A multipart upload refused by its Content-Length names the site's limit, not the body's."""

from __future__ import annotations

import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Runtime
from gremlin.settings import Settings, load
from gremlin.store import Site

from .conftest import add_user, bearer
from .helpers import multipart

LIMIT = 100_000


@pytest.fixture
def settings(site: Site) -> Settings:
    return load(site.root, {"bind": "127.0.0.1:0", "max_upload_bytes": LIMIT}, environ={})


async def test_the_refusal_names_max_upload_bytes(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "ann")
    body, ctype = multipart({}, b"\xff\xd8\xff" + bytes(2 * 1024 * 1024))
    response = await app.test_client().post(
        "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
    )
    assert response.status_code == 413
    message = (await response.get_json())["error"]["message"]
    assert f"({LIMIT} bytes)" in message, message

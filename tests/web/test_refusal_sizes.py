"""Refusals say sizes as people read them (gremlin.units.human_size, as the pages do), not as
raw byte counts; the site's upload limit keeps its exact figure once, in parentheses."""

from __future__ import annotations

import re

import pytest
from quart_trio import QuartTrio

from gremlin.runtime import Runtime
from gremlin.settings import Settings, load
from gremlin.store import Site
from gremlin.units import human_size

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, multipart

MIB = 1024 * 1024


@pytest.fixture
def settings(site: Site) -> Settings:
    flags = {"bind": "127.0.0.1:0", "max_upload_bytes": 3 * MIB, "user_quota_bytes": MIB}
    return load(site.root, flags, environ={})


async def refusal(app: QuartTrio, token: str, size: int) -> str:
    photo = jpeg_bytes()
    body, ctype = multipart({}, photo + bytes(size - len(photo)))
    r = await app.test_client().post(
        "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
    )
    assert r.status_code == 413, await r.get_data()
    return str((await r.get_json())["error"]["message"])


async def test_quota_and_limit_refusals_in_human_units(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "ann")
    quota = await refusal(app, token, 3 * MIB // 2)
    assert quota == "this upload (1.5 MiB) would exceed the storage quota: 0 B of 1.0 MiB used"
    limit = await refusal(app, token, 4 * MIB)
    assert limit == f"the upload is larger than this site accepts: 3.0 MiB ({3 * MIB} bytes)"
    for message in (quota, limit):  # no other raw byte count
        assert not re.search(r"\b\d{4,}\b(?! bytes\))", message), message


def test_human_size() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1024, 14145339, 8 * 1024**3)] == [
        "",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "13.5 MiB",
        "8.0 GiB",
    ]

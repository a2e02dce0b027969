"""tus requests that wait for another one on the same upload (one at a time per upload) must
see what that one did, not the state they read before waiting."""

from __future__ import annotations

import trio
from quart_trio import QuartTrio

from gremlin.runtime import Runtime
from gremlin.web import tus
from gremlin.web.uploads import _Live

from .conftest import add_user, bearer
from .helpers import jpeg_bytes
from .test_tus import TUS, create, media_count, patch, path_of


async def test_requests_waiting_on_an_upload_see_it_was_terminated(
    app: QuartTrio, runtime: Runtime
) -> None:
    _, token = await add_user(runtime.store, "ann")
    data = jpeg_bytes()
    client = app.test_client()
    url = path_of((await create(client, token, len(data))).headers["Location"])
    upload_id = url.rsplit("/", 1)[1]
    answers: dict[str, int] = {}

    async def patch_all() -> None:
        answers["PATCH"] = (await patch(client, token, url, 0, data)).status_code

    async def head() -> None:
        answers["HEAD"] = (await client.head(url, headers={**TUS, **bearer(token)})).status_code

    lock = app.extensions.setdefault("gremlin.tus", _Live()).lock(upload_id)
    async with trio.open_nursery() as nursery, lock:  # held as a receiving PATCH holds it
        nursery.start_soon(patch_all)
        nursery.start_soon(head)
        with trio.fail_after(30):
            while lock.statistics().tasks_waiting < 2:
                await trio.sleep(0.01)
        tus.remove(runtime.site.incoming, upload_id)  # what a DELETE does under the lock
    assert answers == {"PATCH": 404, "HEAD": 404}


async def test_a_patch_that_waited_for_the_committing_one_commits_nothing_more(
    app: QuartTrio, runtime: Runtime
) -> None:
    """Two clients (or a retrying one) PATCH the whole upload at once: one commits it; the
    other, which waited, is told the upload is complete (409), never a 500."""
    _, token = await add_user(runtime.store, "ann")
    data = jpeg_bytes()
    client = app.test_client()
    url = path_of((await create(client, token, len(data))).headers["Location"])
    lock = app.extensions.setdefault("gremlin.tus", _Live()).lock(url.rsplit("/", 1)[1])
    answers: list[int] = []

    async def patch_all() -> None:
        answers.append((await patch(client, token, url, 0, data)).status_code)

    async with trio.open_nursery() as nursery, lock:
        for waiting in (1, 2):  # trio's lock is fair: the first to wait goes first
            nursery.start_soon(patch_all)
            with trio.fail_after(30):
                while lock.statistics().tasks_waiting < waiting:
                    await trio.sleep(0.01)
    assert answers == [204, 409]
    assert await media_count(runtime) == 1

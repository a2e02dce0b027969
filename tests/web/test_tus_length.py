"""A tus PATCH may not go past the Upload-Length its upload declared."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from quart_trio import QuartTrio

from gremlin.errors import TooLarge
from gremlin.runtime import Runtime
from gremlin.web.bodies import BodyReader

from .conftest import add_user, bearer
from .test_tus import TUS, create, patch, path_of


async def test_patch_past_declared_length_names_the_length_and_stores_nothing_past_it(
    app: QuartTrio, runtime: Runtime
) -> None:
    _, token = await add_user(runtime.store, "alice")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        url = path_of((await create(client, token, 10)).headers["Location"])
        upload_id = url.rsplit("/", 1)[1]
        first = await patch(client, token, url, 0, b"a" * 4)
        assert first.status_code == 204 and first.headers["Upload-Offset"] == "4"

        over = await patch(client, token, url, 4, b"b" * 7)
        assert over.status_code == 413
        body = await over.get_data(as_text=True)
        assert "Upload-Length" in body and "10 bytes" in body, body
        assert "max_upload_bytes" not in body and "this site accepts" not in body

        bin_path = runtime.site.incoming / f"{upload_id}.bin"
        assert bin_path.read_bytes() == b"a" * 4  # not one byte of the refused body
        head = await client.head(url, headers={**TUS, **bearer(token)})
        assert head.headers["Upload-Offset"] == "4"
        # Still resumable: the right-sized tail is taken (then refused as not media).
        done = await patch(client, token, url, 4, b"c" * 6)
        assert done.status_code == 415


@pytest.mark.parametrize("chunks", [[b"abc", b"defgh"], [b"abcdefgh"], [b"ab", b"cd", b"efg"]])
async def test_streamed_body_without_content_length_never_yields_past_the_limit(
    chunks: list[bytes],
) -> None:
    """Chunked bodies (no Content-Length): the chunk that crosses the limit is not yielded."""
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False

    async def receive() -> Any:
        await trio.lowlevel.checkpoint()
        return messages.pop(0)

    def refuse(limit: int) -> TooLarge:
        return TooLarge(f"past the declared Upload-Length ({limit})")

    reader = BodyReader(receive, 5, refuse)  # type: ignore[arg-type]
    got = b""
    with pytest.raises(TooLarge, match="declared Upload-Length"):
        async for chunk in reader.chunks():
            got += chunk
    assert len(got) <= 5 and b"abcdefgh".startswith(got)

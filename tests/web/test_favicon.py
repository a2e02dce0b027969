"""Every page names an icon the site serves, and /favicon.ico is a real icon (no 404)."""

from __future__ import annotations

import io
import re

from PIL import Image
from quart_trio import QuartTrio

from gremlin.runtime import Runtime

from .pageclient import text_of


async def test_favicon_is_served_and_linked(app: QuartTrio, runtime: Runtime) -> None:
    async with app.test_app() as test_app:
        client = test_app.test_client()
        ico = await client.get("/favicon.ico")
        assert ico.status_code == 200
        assert ico.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
        assert "max-age" in ico.headers.get("Cache-Control", "")
        with Image.open(io.BytesIO(await ico.get_data())) as im:
            assert im.format == "ICO" and (32, 32) in im.info["sizes"]

        page = await text_of(await client.get("/"))
        links = re.findall(r'<link rel="icon" href="([^"]+)"', page)
        assert len(links) == 2, page
        for href in links:
            got = await client.get(href.replace("&amp;", "&"))
            assert got.status_code == 200, href
            assert got.mimetype.startswith("image/"), (href, got.mimetype)
        svg = await client.get(links[1])
        assert (await svg.get_data()).startswith(b"<svg")

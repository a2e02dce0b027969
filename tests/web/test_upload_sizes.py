"""One byte-size format: the upload page's limit, the uploader's refusal and its progress."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from quart_trio import QuartTrio

import gremlin.web.render
from gremlin.runtime import Runtime
from gremlin.settings import Settings, load
from gremlin.store import Site
from gremlin.web.render import human_size

from .conftest import add_user
from .pageclient import signed_in, text_of

UPLOADER_JS = Path(gremlin.web.render.__file__).parent / "static" / "uploader.js"
LIMIT = 200_000  # 195.3 KiB, which the old uploader called "0.2 MiB"


@pytest.fixture
def settings(site: Site) -> Settings:
    return load(site.root, {"bind": "127.0.0.1:0", "max_upload_bytes": LIMIT}, environ={})


async def test_the_page_hands_the_uploader_its_limit_as_text(
    app: QuartTrio, runtime: Runtime
) -> None:
    await add_user(runtime.store, "ann")
    async with app.test_app() as test_app:
        client = await signed_in(test_app, "ann")
        page = await text_of(await client.get("/upload"))
    stated = re.search(r"up to ([^<]+?) each</p>", page)
    given = re.search(r'data-max-text="([^"]+)"', page)
    assert stated and given, page
    assert html.unescape(stated.group(1)) == html.unescape(given.group(1)) == "195.3 KiB"
    js = UPLOADER_JS.read_text()
    assert 'getAttribute("data-max-text")' in js
    assert 'accepts up to " + MAX_TEXT' in js and 'MiB"; }' not in js


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the uploader's JS")
def test_the_uploaders_size_function_matches_human_size() -> None:
    js = UPLOADER_JS.read_text()
    m = re.search(r"\n  function size\(n\) \{\n.*?\n  \}\n", js, re.S)
    assert m, "uploader.js has no size(n)"
    values = [0, 1, 1023, 1024, 1536, 200_000, 1048575, 1048576, 5 * 1024**3 + 7, 3 * 1024**5]
    script = m.group(0) + f"console.log(JSON.stringify({json.dumps(values)}.map(size)));"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [human_size(v) for v in values]

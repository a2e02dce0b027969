"""The site in real Chromium (Debian's package, driven by Playwright) against a real server.

Sign in, upload two images with the JS uploader (tus), watch the progress bars, wait until
processing has made them ready, find them in the gallery, open the media page, and save a
screenshot to test-artifacts/. More browser tests (resuming after a server kill or a page
reload, no JavaScript, hostile input, live progress) are in test_browser_more.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gremlin.store import Site

from ..conftest import ServerProcess
from .browserkit import (
    ARTIFACTS,
    BROWSER_TESTS,
    add_member,
    browser,
    make_photo,
    media_rows,
    record_upload_states,
    sign_in,
    throttle_uploads,
)

pytestmark = BROWSER_TESTS
__all__ = ["browser"]  # the fixture


def test_sign_in_upload_two_images_and_see_them(
    site: Site, server_factory: type[ServerProcess], browser: Any, tmp_path: Path
) -> None:
    add_member(site, "ann")
    photos = [make_photo(tmp_path / f"harbour_{i}.jpg", seed=i) for i in (1, 2)]
    server = server_factory(site.root)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, server.url, "ann")

    page.goto(f"{server.url}/upload")
    page.wait_for_selector("#drop")  # the JS uploader replaced the plain form
    record_upload_states(page)
    throttle_uploads(page, 512 * 1024)  # slow enough to see the bars move
    page.set_input_files("#files", [str(p) for p in photos])
    rows = page.locator("#list li")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    # Both rows reach "Ready" once the job engine has processed them.
    page.wait_for_function(
        "() => document.querySelectorAll('#list li.done').length === 2", timeout=180_000
    )
    states = page.evaluate("window.__states")
    moving = [s for s in states if s.startswith("Uploading") and not s.startswith("Uploading 0 B ")]
    assert moving, states
    assert any("processing" in s.lower() for s in states), states
    assert [page.locator("#list li progress").nth(i).get_attribute("value") for i in (0, 1)] == [
        "100",
        "100",
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-upload.png"), full_page=True)

    rows_in_db = media_rows(site)
    assert sorted(t for _, t, _ in rows_in_db) == ["harbour 1", "harbour 2"]
    assert {s for _, _, s in rows_in_db} == {"ready"}

    page.goto(f"{server.url}/u/ann")
    tiles = page.locator(".grid .tile")
    assert tiles.count() == 2
    for media_id, _, _ in rows_in_db:
        thumb = page.locator(f'a[href="/m/{media_id}"] img')
        assert thumb.get_attribute("loading") == "lazy"
        assert int(thumb.get_attribute("width") or 0) > 0
    page.screenshot(path=str(ARTIFACTS / "browser-gallery.png"), full_page=True)

    page.locator(".grid .tile a.title", has_text="harbour 1").click()
    page.wait_for_selector(".stage img")
    loaded = page.eval_on_selector(".stage img", "img => img.complete && img.naturalWidth")
    assert loaded and loaded > 0
    assert page.locator("h1").inner_text() == "harbour 1"
    assert page.locator(".stage a").get_attribute("href", timeout=5000).endswith("/original")
    page.screenshot(path=str(ARTIFACTS / "browser-media.png"), full_page=True)
    assert server.stop() == 0

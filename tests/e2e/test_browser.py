"""The site in real Chromium (Debian's package, driven by Playwright) against a real server.

Sign in, upload two images with the JS uploader (tus), watch the progress bars, wait until
processing has made them ready, find them in the gallery, open the media page, and save a
screenshot to test-artifacts/. A second test kills the server in the middle of an upload and
restarts it on the same port: the page's uploader resumes by itself and the media commits once.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from gremlin.store import Site

from ..conftest import ServerProcess, run_gremlin

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


def make_photo(path: Path, seed: int, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A JPEG with shapes and noise (noise keeps it from compressing to nothing)."""
    rnd = random.Random(seed)
    im = Image.effect_noise(size, 40).convert("RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(25):
        x, y, r = rnd.randrange(size[0]), rnd.randrange(size[1]), rnd.randrange(40, 400)
        color = tuple(rnd.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color)  # type: ignore[arg-type]
    im.save(path, "JPEG", quality=95)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def add_member(site: Site, name: str) -> None:
    done = run_gremlin("adduser", str(site.root), name, "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def sign_in(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/signin")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("text=Sign out")


def record_upload_states(page: Any) -> None:
    """Keep every text the uploader shows, to prove the bars moved through the upload."""
    page.evaluate(
        """() => {
        window.__states = [];
        new MutationObserver(() => {
            document.querySelectorAll('#list li .state').forEach(
                el => window.__states.push(el.textContent));
        }).observe(document.getElementById('list'),
                   {subtree: true, childList: true, characterData: true});
    }"""
    )


def throttle_uploads(page: Any, bytes_per_second: int) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def media_rows(site: Site) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{site.db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, title, state FROM media ORDER BY created_at").fetchall()
    finally:
        conn.close()


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
    assert any(s.startswith("Uploading") and " 0.0 MiB of" not in s for s in states), states
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_upload_resumes_after_the_server_is_killed(
    site: Site, server_factory: type[ServerProcess], browser: Any, tmp_path: Path
) -> None:
    add_member(site, "ann")
    photo = make_photo(tmp_path / "big.jpg", seed=3, size=(3000, 2400))
    size = photo.stat().st_size
    port = free_port()  # the restarted server must answer at the upload URL the page holds
    server = server_factory(site.root, "--bind", f"127.0.0.1:{port}")
    page = browser.new_page()
    sign_in(page, server.url, "ann")
    page.goto(f"{server.url}/upload")
    page.wait_for_selector("#drop")
    throttle_uploads(page, 256 * 1024)
    page.set_input_files("#files", str(photo))
    # Wait until part of the file is on the server, then kill it without warning.
    incoming = site.content / "incoming"
    page.wait_for_function(
        "() => /Uploading [2-9]/.test(document.querySelector('#list li .state').textContent)",
        timeout=60_000,
    )
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    partial = sum(
        p.stat().st_size for p in incoming.rglob("*") if p.is_file() and p.suffix != ".json"
    )
    assert 0 < partial < size + 4096
    page.wait_for_function(
        "() => document.querySelector('#list li .state').textContent.includes('Connection lost')",
        timeout=60_000,
    )
    server_factory(site.root, "--bind", f"127.0.0.1:{port}")
    page.wait_for_function(
        "() => document.querySelectorAll('#list li.done').length === 1", timeout=180_000
    )
    rows = media_rows(site)
    assert len(rows) == 1 and rows[0][2] == "ready"
    # The stored original is the whole file, byte for byte.
    conn = sqlite3.connect(f"file:{site.db}?mode=ro", uri=True)
    path, stored = conn.execute("SELECT path, size FROM files WHERE role = 'original'").fetchone()
    conn.close()
    assert stored == size
    assert (site.content / path).read_bytes() == photo.read_bytes()


def test_choosing_the_same_file_after_a_reload_resumes_it(
    site: Site, server_factory: type[ServerProcess], browser: Any, tmp_path: Path
) -> None:
    add_member(site, "ann")
    photo = make_photo(tmp_path / "again.jpg", seed=4, size=(3000, 2400))
    server = server_factory(site.root)
    page = browser.new_page()
    sign_in(page, server.url, "ann")
    page.goto(f"{server.url}/upload")
    page.wait_for_selector("#drop")
    throttle_uploads(page, 256 * 1024)
    page.set_input_files("#files", str(photo))
    page.wait_for_function(
        "() => /Uploading [2-9]/.test(document.querySelector('#list li .state').textContent)",
        timeout=60_000,
    )
    page.reload()  # the upload in flight is abandoned; localStorage remembers its URL
    page.wait_for_selector("#drop")
    assert "again.jpg" in page.locator("#resumable").inner_text()
    record_upload_states(page)
    page.set_input_files("#files", str(photo))
    page.wait_for_function(
        "() => document.querySelectorAll('#list li.done').length === 1", timeout=180_000
    )
    uploading = [s for s in page.evaluate("window.__states") if s.startswith("Uploading")]
    assert uploading and not uploading[0].startswith("Uploading 0.0 MiB"), uploading[:3]
    assert [state for _, _, state in media_rows(site)] == ["ready"]
    # No upload bytes stay behind (the committed upload's small state file may, until GC).
    left = [p for p in (site.content / "incoming").rglob("*") if p.suffix != ".json"]
    assert left == []


def test_without_javascript_and_with_a_hostile_title(
    site: Site, server_factory: type[ServerProcess], browser: Any, tmp_path: Path
) -> None:
    """The plain form uploads with JavaScript off; a script in the title or description never
    runs, it shows as text."""
    add_member(site, "mallory")
    photo = make_photo(tmp_path / "plain.jpg", seed=5, size=(800, 600))
    server = server_factory(site.root)
    nojs = browser.new_context(java_script_enabled=False).new_page()
    sign_in(nojs, server.url, "mallory")
    nojs.goto(f"{server.url}/upload")
    assert nojs.locator("#uploader").is_hidden()  # the JS uploader stays hidden without JS
    nojs.fill("#plain input[name=title]", "Plain form")
    nojs.set_input_files("#plain input[name=file]", str(photo))
    nojs.click("#plain button[type=submit]")
    nojs.wait_for_url(f"{server.url}/m/*")
    assert "Processing has started" in nojs.content()
    media_id = nojs.url.rsplit("/m/", 1)[1].split("?")[0]

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server.url, "mallory")
    page.goto(f"{server.url}/m/{media_id}/edit")
    title = '<script>alert("title")</script><img src=x onerror=alert("img")>'
    page.fill("input[name=title]", title)
    page.fill(
        "textarea[name=description]",
        '<script>alert("d")</script> [x](javascript:alert("link")) <b onmouseover=alert(1)>b</b>',
    )
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{server.url}/m/{media_id}?done=saved")
    assert page.locator("h1").inner_text() == title
    link = page.locator(".desc a", has_text="x")
    assert link.count() == 1 and link.get_attribute("href") is None  # javascript: was dropped
    link.click()
    for path in (f"/m/{media_id}", "/u/mallory", "/"):
        page.goto(server.url + path)
        page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0


def test_processing_progress_updates_live_and_the_page_reloads_when_done(
    site: Site, server_factory: type[ServerProcess], browser: Any
) -> None:
    """progress.js polls the JSON API: the bars follow it, and the page reloads at the end.
    The API's answers are played by the test (Playwright routes), so the timing is ours."""
    add_member(site, "ann")
    server = server_factory(site.root)
    conn = sqlite3.connect(site.db)
    now = time.time()
    with conn:
        conn.execute(
            "INSERT INTO media (id, owner_id, kind, state, title, created_at, updated_at)"
            " VALUES ('slowmedia0000000000000000', 1, 'video', 'processing', 'Slow', ?, ?)",
            (now, now),
        )
        # A job the engine leaves alone for an hour (its next try is then).
        conn.execute(
            "INSERT INTO jobs (media_id, step, input_path, output_path, state, max_attempts,"
            " not_before, created_at) VALUES ('slowmedia0000000000000000', 'probe', 'queue/x',"
            " 'media/x', 'queued', 3, ?, ?)",
            (now + 3600, now),
        )
    conn.close()
    answers = [
        {"state": "processing", "jobs": [{"step": "probe", "state": "running", "progress": 0.5}]},
        {"state": "ready", "jobs": [{"step": "probe", "state": "done", "progress": 1}]},
    ]
    served: list[int] = []

    def api(route: Any) -> None:
        served.append(1)
        body = answers[min(len(served), len(answers)) - 1]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page = browser.new_page()
    sign_in(page, server.url, "ann")
    page.route("**/api/v1/media/slowmedia0000000000000000", api)
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    page.goto(f"{server.url}/m/slowmedia0000000000000000")
    assert page.locator("#overall").get_attribute("value") == "0"
    page.wait_for_function("() => document.getElementById('overall-text').textContent === '50%'")
    # The second answer says ready: the script reloads the page.
    deadline = time.monotonic() + 30
    while len(loads) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(loads) >= 2 and len(served) >= 2

"""Browser tests of resuming, hostile input, no JavaScript, and live processing progress."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from gremlin.store import Site

from ..conftest import ServerProcess
from .browserkit import (
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
        "() => /Uploading [2-9][0-9.]* MiB/"
        ".test(document.querySelector('#list li .state').textContent)",
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
        "() => /Uploading [2-9][0-9.]* MiB/"
        ".test(document.querySelector('#list li .state').textContent)",
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
    assert uploading and not uploading[0].startswith("Uploading 0 B "), uploading[:3]
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

"""Helpers for the browser tests: Debian's Chromium through Playwright, a real server."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from gremlin.store import Site

from ..conftest import run_gremlin

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

BROWSER_TESTS = [
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

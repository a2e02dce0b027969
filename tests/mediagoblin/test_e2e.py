"""The imported fixture processed by a real server: every media becomes ready, derived files
carry no GPS, nothing public shows the position, and old URLs lead to real files."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ..conftest import run_gremlin
from .conftest import MgCopy

GPS_IFD = 0x8825
POSITION = ("52.52", "52.519", "13.405", "13.40")


def wait_processed(site: Path, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads(run_gremlin("status", str(site), "--json").stdout)
        if status["media"]["processing"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(1)


@pytest.mark.slow
def test_imported_site_served_and_processed(
    tmp_path: Path, mg: MgCopy, server_factory: Any
) -> None:
    site = tmp_path / "site"
    imported = run_gremlin("import-mediagoblin", str(site), str(mg.db), str(mg.user_dev))
    assert "media               12" in imported.stdout, imported.stderr
    server = server_factory(site)
    try:
        status = wait_processed(site)
        assert status["media"] == {"processing": 0, "ready": 12, "failed": 0}, server.log()

        conn = sqlite3.connect(site / "db.sqlite")
        conn.row_factory = sqlite3.Row
        ids = {
            int(r["source_id"]): r["target_id"]
            for r in conn.execute(
                "SELECT source_id, target_id FROM legacy_map WHERE kind = 'media'"
            )
        }
        cat = ids[1]
        derived = conn.execute(
            "SELECT role, path, mime FROM files WHERE media_id = ? AND role != 'original'", (cat,)
        ).fetchall()
        assert {r["role"] for r in derived} >= {"thumb", "medium"}
        for row in derived:
            with Image.open(site / "content" / row["path"]) as im:
                assert not im.getexif().get_ifd(GPS_IFD), row["role"]
                assert im.size[1] > im.size[0], "orientation 6 applied: portrait"
        exif = conn.execute("SELECT exif FROM media WHERE id = ?", (cat,)).fetchone()[0] or ""
        assert "gps" not in exif.lower() and not any(p in exif for p in POSITION)
        conn.close()

        with httpx.Client(base_url=server.url, timeout=30) as http:
            page = http.get("/u/alice/m/garden-cat/", follow_redirects=True)
            assert page.status_code == 200 and str(page.url).endswith(f"/m/{cat}")
            assert "Garden cat" in page.text
            api = http.get(f"/api/v1/media/{cat}").text
            for text in (page.text, api):
                assert not any(p in text for p in POSITION)

            medium = http.get(
                "/mgoblin_media/media_entries/1/a_garden_cat_gps_rot6.medium.jpg",
                follow_redirects=True,
            )
            assert medium.status_code == 200 and medium.headers["content-type"] == "image/webp"
            assert not Image.open(io.BytesIO(medium.content)).getexif().get_ifd(GPS_IFD)
            clip = http.get(
                "/mgoblin_media/media_entries/8/a_testsrc_3s.720p.webm", follow_redirects=True
            )
            assert clip.status_code == 200 and clip.headers["content-type"].startswith("video/")
            favourites = http.get("/u/bob/collection/favourites/", follow_redirects=True)
            assert favourites.status_code == 200 and "Favourites" in favourites.text
    finally:
        assert server.stop() == 0

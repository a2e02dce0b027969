"""fsck on a live site, as an admin would check it: a real server processes a real upload, damage
is made by hand, `gremlin fsck` reports exactly that damage, `--repair` fixes it, the server
re-makes the derived files, and fsck is clean again."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from gremlin.store import Site, connect
from tests.conftest import run_gremlin
from tests.store.fsck_site import HOUR, make_old, put_file
from tests.web.helpers import jpeg_bytes, multipart
from tests.web.test_uploads_e2e import add_user

pytestmark = pytest.mark.slow
GRACE0 = {"GREMLIN_FSCK_ORPHAN_GRACE_SECONDS": "0"}


def wait_ready(http: httpx.Client, media_id: str, timeout: float = 120) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        media = http.get(f"/api/v1/media/{media_id}").json()
        if media["state"] == "ready":
            return media  # type: ignore[no-any-return]
        assert media["state"] != "failed", media
        time.sleep(0.2)
    raise AssertionError(f"media {media_id} not ready: {media}")


def derived_files(site: Site, media_id: str) -> dict[str, tuple[str, str]]:
    conn = connect(site.db)
    try:
        rows = conn.execute(
            "SELECT role, path, sha256 FROM files WHERE media_id = ? AND role != 'original'",
            (media_id,),
        ).fetchall()
        return {r["role"]: (r["path"], r["sha256"]) for r in rows}
    finally:
        conn.close()


def test_damage_made_by_hand_is_reported_and_repaired(site: Site, server_factory) -> None:  # type: ignore[no-untyped-def]
    token = add_user(site, "ann")
    server = server_factory(site.root)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        body, ctype = multipart({"title": "fsck"}, jpeg_bytes((900, 600)))
        created = http.post("/api/v1/media", content=body, headers={"Content-Type": ctype})
        assert created.status_code == 201, created.text
        media_id = created.json()["id"]
        wait_ready(http, media_id)
        derived = derived_files(site, media_id)
        assert len(derived) >= 2, derived
        clean = run_gremlin("fsck", str(site.root), "--json", env=GRACE0)
        assert clean.returncode == 0, clean.stdout + clean.stderr

        # the damage, by hand
        (gone_role, (gone, _)), (cut_role, (cut, _)) = sorted(derived.items())[:2]
        (site.content / gone).unlink()
        os.truncate(site.content / cut, 7)
        put_file(site, f"media/{media_id}/dropped.txt", b"dropped by hand")
        put_file(site, "incoming/abandoned.bin", b"half an upload")
        put_file(site, "incoming/abandoned.json", b"{}")
        for name in ("abandoned.bin", "abandoned.json"):
            make_old(site.incoming / name, 30 * HOUR)
        put_file(site, "jobs/31337/log", b"nobody's")

        found = run_gremlin("fsck", str(site.root), "--json", env=GRACE0)
        assert found.returncode == 3, found.stderr
        findings = sorted((f["kind"], f["path"]) for f in json.loads(found.stdout)["findings"])
        assert findings == sorted(
            [
                ("missing", gone),
                ("mismatch", cut),
                ("orphan", f"media/{media_id}/dropped.txt"),
                ("stale_upload", "incoming/abandoned.bin"),
                ("stray_job_dir", "jobs/31337"),
            ]
        )

        fixed = run_gremlin("fsck", str(site.root), "--json", "--repair", env=GRACE0)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        actions = sorted((r["action"], r["path"]) for r in json.loads(fixed.stdout)["repaired"])
        assert [a for a, _ in actions].count("requeued") in (1, 2)  # one job may make both
        assert ("quarantined", f"media/{media_id}/dropped.txt") in actions
        assert ("removed", "incoming/abandoned.bin") in actions
        assert ("removed", "jobs/31337") in actions

        # the server re-makes what was lost; the site is whole again
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            remade = derived_files(site, media_id)
            if gone_role in remade and cut_role in remade:
                break
            time.sleep(0.2)
        wait_ready(http, media_id)
        for path, sha in derived_files(site, media_id).values():
            data = (site.content / path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha
        again = run_gremlin("fsck", str(site.root), "--json", env=GRACE0)
        assert again.returncode == 0, again.stdout
        assert json.loads(again.stdout)["findings"] == []
        quarantined = [p for p in site.quarantine.rglob("*") if p.is_file()]
        assert sorted(p.name for p in quarantined) == sorted([Path(cut).name, "dropped.txt"])
        status = json.loads(run_gremlin("status", str(site.root), "--json").stdout)
        assert status["fsck"]["findings"] == 0

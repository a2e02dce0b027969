"""`gremlin import` as a real process on a real site: good files in, bad files refused."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from gremlin.store import Site

from ..conftest import gremlin_cmd, run_gremlin
from .images import bomb_png, camera_jpeg, corrupt_jpeg, image_bytes, write


@pytest.fixture
def alice(site: Site) -> str:
    done = run_gremlin("adduser", str(site.root), "alice", "--password-stdin", input="password1\n")
    assert done.returncode == 0, done.stderr
    return "alice"


def make_batch(root: Path) -> dict[str, Path]:
    return {
        "good_jpeg": write(root / "batch" / "a-camera.jpg", camera_jpeg()),
        "png_named_jpg": write(root / "batch" / "b-really-a-png.jpg", image_bytes("PNG")),
        "heic": write(root / "batch" / "sub" / "c-phone.heic", image_bytes("HEIF")),
        "corrupt": write(root / "batch" / "d-corrupt.jpg", corrupt_jpeg()),
        "bomb": write(root / "batch" / "e-bomb.png", bomb_png()),
        "zero": write(root / "batch" / "f-zero.jpg", b""),
        "text": write(root / "batch" / "g-text.jpg", b"not an image at all\n" * 20),
        "bmp": write(root / "batch" / "h-old.bmp", image_bytes("BMP")),
        "hidden": write(root / "batch" / ".DS_Store", b"\0\0\0\1Bud1"),
    }


def db_rows(site: Site, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(site.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_import_a_mixed_batch(site: Site, alice: str, tmp_path: Path) -> None:
    files = make_batch(tmp_path)
    missing = str(tmp_path / "nowhere.jpg")
    done = run_gremlin("import", str(site.root), "--user", alice, str(tmp_path / "batch"), missing)

    assert done.returncode == 1
    printed = dict(reversed(line.split(" ", 1)) for line in done.stdout.splitlines())
    accepted = ("good_jpeg", "png_named_jpg", "heic", "corrupt", "bomb")
    assert set(printed) == {str(files[k]) for k in accepted}
    for line in (
        f"refused {files['zero']}: the file is empty (zero bytes)",
        f"refused {files['text']}: unsupported file: it looks like text",
        f"refused {files['bmp']}: unsupported file",
        f"refused {missing}: no such file",
    ):
        assert line in done.stderr, done.stderr
    assert "image/jpeg" in done.stderr  # what is supported is said
    assert "DS_Store" not in done.stdout + done.stderr
    assert "Error: 4 of 9 files were not imported" in done.stderr
    assert "Traceback" not in done.stderr

    media = {r["id"]: r for r in db_rows(site, "SELECT * FROM media")}
    assert set(media) == set(printed.values())
    assert {r["state"] for r in media.values()} == {"processing"}
    files_rows = db_rows(site, "SELECT * FROM files")
    assert len(files_rows) == 5
    for row in files_rows:
        stored = site.content / row["path"]
        assert stored.is_file() and stored.stat().st_size == row["size"]
    png = media[printed[str(files["png_named_jpg"])]]
    assert png["original_name"] == "b-really-a-png.jpg"
    [png_file] = [r for r in files_rows if r["media_id"] == png["id"]]
    assert png_file["mime"] == "image/png" and png_file["path"].endswith("/original.png")
    jobs = db_rows(site, "SELECT * FROM jobs")
    assert sorted(j["media_id"] for j in jobs) == sorted(media)
    assert {j["state"] for j in jobs} == {"queued"}
    assert list(site.incoming.iterdir()) == []
    # The sources are copied, never moved.
    assert all(p.exists() for p in files.values())


def test_import_json_and_exit_0(site: Site, alice: str, tmp_path: Path) -> None:
    one = write(tmp_path / "one.webp", image_bytes("WEBP"))
    done = run_gremlin("import", str(site.root), "--user", alice, "--json", str(one))
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert entry["path"] == str(one)
    assert [r["id"] for r in db_rows(site, "SELECT id FROM media")] == [entry["id"]]


def test_import_for_an_unknown_user_is_a_handled_error(site: Site, tmp_path: Path) -> None:
    one = write(tmp_path / "one.png", image_bytes("PNG"))
    done = run_gremlin("import", str(site.root), "--user", "nobody", str(one))
    assert done.returncode == 1
    assert "Error: no user named 'nobody'" in done.stderr
    assert db_rows(site, "SELECT id FROM media") == []


def test_import_without_paths_is_a_usage_error(site: Site) -> None:
    done = run_gremlin("import", str(site.root), "--user", "alice")
    assert done.returncode == 2


def test_a_killed_import_has_printed_every_media_it_committed(site: Site, alice: str) -> None:
    """Each `<media-id> <path>` line is out as soon as its media is committed: an import
    killed half-way (or piped to a file) still tells the admin which files are in."""
    many = site.root.parent / "many"
    for i in range(200):
        write(many / f"{i:03d}.png", image_bytes("PNG", size=(32, 24)))
    proc = subprocess.Popen(
        gremlin_cmd("import", str(site.root), "--user", alice, str(many)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(db_rows(site, "SELECT id FROM media")) < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    printed = {line.split(" ", 1)[0] for line in out.splitlines()}
    committed = {row["id"] for row in db_rows(site, "SELECT id FROM media")}
    assert printed <= committed
    assert len(printed) >= len(committed) - 1  # one may be killed between commit and print

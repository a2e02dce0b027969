"""An older database put back (gremlin revert, a restored backup) lacks the rows of uploads
acknowledged since. Their files are a person's: the server's GC must not take them for
aborted commits (returned to incoming/, deleted a day later); fsck reports them as orphans."""

import json
import sqlite3
import time
from pathlib import Path

import pytest

from gremlin.store import COMMITTING
from tests.conftest import ServerProcess, run_gremlin
from tests.media.images import image_bytes

pytestmark = pytest.mark.slow


def backup(src: Path, dst: Path) -> None:
    """`sqlite3 db.sqlite ".backup dst"`, as the admin guide says."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def restore(site: Path, saved: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (site / f"db.sqlite{suffix}").unlink(missing_ok=True)
    (site / "db.sqlite").write_bytes(saved.read_bytes())


def test_uploads_newer_than_a_restored_database_are_not_swept(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "site"
    assert run_gremlin("init", str(site)).returncode == 0
    added = run_gremlin("adduser", str(site), "alice", "--password-stdin", input="long enough pw\n")
    assert added.returncode == 0, added.stderr
    saved = tmp_path / "backup.sqlite"
    backup(site / "db.sqlite", saved)

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("JPEG"))
    imported = run_gremlin("import", str(site), "--user", "alice", "--json", str(photo))
    assert imported.returncode == 0, imported.stderr
    (media_id,) = [item["id"] for item in json.loads(imported.stdout)]
    acknowledged = site / "content" / "queue" / media_id / "original.jpg"
    assert acknowledged.read_bytes() == photo.read_bytes()

    restore(site, saved)
    # Beside it, a commit that really was cut short (killed before its COMMIT).
    aborted = site / "content" / "queue" / "abortedcommit"
    aborted.mkdir()
    (aborted / COMMITTING).touch()
    (aborted / "original.jpg").write_bytes(b"never acknowledged")

    server = server_factory(site)  # the GC's first round runs at start-up
    swept = site / "content" / "incoming" / "aborted-abortedcommit.bin"
    deadline = time.monotonic() + 60
    while not swept.exists():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert server.stop() == 0

    assert acknowledged.read_bytes() == photo.read_bytes()
    assert sorted(p.name for p in (site / "content" / "incoming").iterdir()) == [swept.name]
    report = run_gremlin("fsck", str(site), "--json", "--no-progress")
    assert report.returncode == 3
    findings = json.loads(report.stdout)["findings"]
    assert [(f["kind"], f["path"]) for f in findings] == [
        ("orphan", f"queue/{media_id}/original.jpg")
    ]

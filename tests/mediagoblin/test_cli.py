"""`gremlin import-mediagoblin` as a real process: text, --json, exit codes, SIGKILL resume."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from gremlin.store import COMMITTING

from ..conftest import gremlin_cmd, run_gremlin
from .conftest import MgCopy


def mapped_media(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM legacy_map WHERE kind = 'media'").fetchone()[
                0
            ]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_text_json_and_exit_codes(tmp_path: Path, mg: MgCopy) -> None:
    site = tmp_path / "site"
    args = ("import-mediagoblin", str(site), str(mg.db), str(mg.user_dev))
    dry = run_gremlin(*args, "--dry-run", "--json")
    assert dry.returncode == 1, dry.stderr  # entry 13 cannot be imported: a problem
    assert json.loads(dry.stdout)["imported"]["media"] == 12
    assert not site.exists()

    first = run_gremlin(*args)
    assert first.returncode == 1, first.stderr
    assert "media               12  (9 image, 2 video, 1 audio)" in first.stdout
    assert "media 13 (bob: Broken upload)" in first.stdout and "BadMediaFail" in first.stdout

    again = run_gremlin(*args, "--json")
    data = json.loads(again.stdout)
    assert data["imported"] == dict.fromkeys(data["imported"], 0)
    assert data["already"]["media"] == 12 and data["already"]["users"] == 3


def test_usage_and_handled_errors(tmp_path: Path, mg: MgCopy) -> None:
    assert run_gremlin("import-mediagoblin", str(tmp_path)).returncode == 2
    missing = run_gremlin(
        "import-mediagoblin", str(tmp_path / "s"), str(tmp_path / "nope.db"), str(mg.user_dev)
    )
    assert missing.returncode == 1
    assert "Error: no MediaGoblin database" in missing.stderr and "Try:" in missing.stderr
    wrong_dir = run_gremlin("import-mediagoblin", str(tmp_path / "s"), str(mg.db), str(tmp_path))
    assert wrong_dir.returncode == 1 and "user_dev" in wrong_dir.stderr


@pytest.mark.slow
def test_sigkilled_import_finishes_on_the_next_run(tmp_path: Path, mg: MgCopy) -> None:
    site = tmp_path / "site"
    args = ("import-mediagoblin", str(site), str(mg.db), str(mg.user_dev), "--json")
    proc = subprocess.Popen(gremlin_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while mapped_media(site / "db.sqlite") < 3 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed_at = mapped_media(site / "db.sqlite")
    assert 3 <= killed_at < 12, "the kill came too late to test anything"

    resumed = run_gremlin(*args)
    data = json.loads(resumed.stdout)
    assert data["imported"]["media"] + data["already"]["media"] == 12
    assert data["already"]["media"] == killed_at
    conn = sqlite3.connect(site / "db.sqlite")
    assert conn.execute("SELECT count(*) FROM media").fetchone()[0] == 12
    assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM collection_items").fetchone()[0] == 3
    # No staged copy is left behind (the re-run clears the killed run's); every row's file is
    # there. A kill between commit_upload's move and its transaction can leave one queued
    # file without a row, beside its directory's COMMITTING mark (bookkeeping, not content):
    # the server's GC sweeps such aborted commits (commit_upload's contract).
    assert list((site / "content" / "incoming").iterdir()) == []
    queued = {
        p.relative_to(site / "content").as_posix()
        for p in (site / "content" / "queue").rglob("*")
        if p.is_file() and p.name != COMMITTING
    }
    rows = {r[0] for r in conn.execute("SELECT path FROM files")}
    assert rows <= queued and len(queued - rows) <= 1
    conn.close()

"""A commit killed between its move into queue/ and its transaction leaves no orphan behind."""

import fcntl
import os
import sqlite3

from gremlin.media.commit import no_commit_in_progress, sweep_aborted_commits
from gremlin.store import COMMITTING, Site


def _conn(site: Site) -> sqlite3.Connection:
    return sqlite3.connect(site.db)


def test_sweep_returns_an_aborted_commit_to_incoming(site: Site) -> None:
    aborted = site.queue / "abc123"
    aborted.mkdir()
    (aborted / COMMITTING).touch()  # what a commit leaves when killed before its COMMIT
    (aborted / "original.jpg").write_bytes(b"jpeg bytes")
    assert sweep_aborted_commits(_conn(site), site.content) == ["abc123"]
    assert not aborted.exists()
    assert (site.incoming / "aborted-abc123.bin").read_bytes() == b"jpeg bytes"
    assert sorted(p.name for p in site.incoming.iterdir()) == ["aborted-abc123.bin"]


def test_sweep_leaves_an_acknowledged_upload_the_database_lacks(site: Site) -> None:
    """After a revert or a restored backup the database lacks rows of uploads acknowledged
    since: their files are a person's (fsck reports them as orphans), never an aborted
    commit for the GC to return to incoming/ and delete a day later."""
    kept = site.queue / "since"
    kept.mkdir()
    (kept / "original.jpg").write_bytes(b"an acknowledged upload")
    assert sweep_aborted_commits(_conn(site), site.content) == []
    assert (kept / "original.jpg").read_bytes() == b"an acknowledged upload"
    assert list(site.incoming.iterdir()) == []


def test_sweep_removes_the_mark_of_a_commit_that_went_through(site: Site) -> None:
    """Killed between its COMMIT and removing its mark: the row decides, the mark goes."""
    conn = _conn(site)
    conn.execute("INSERT INTO users (id, name, created_at) VALUES (1, 'u', 0)")
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
        " VALUES ('done1', 1, 'image', 'processing', 0, 0)"
    )
    conn.commit()
    (site.queue / "done1").mkdir()
    (site.queue / "done1" / COMMITTING).touch()
    (site.queue / "done1" / "original.jpg").write_bytes(b"x")
    assert sweep_aborted_commits(conn, site.content) == []
    assert sorted(p.name for p in (site.queue / "done1").iterdir()) == ["original.jpg"]


def test_sweep_leaves_committed_media_alone(site: Site) -> None:
    conn = _conn(site)
    conn.execute("INSERT INTO users (id, name, created_at) VALUES (1, 'u', 0)")
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
        " VALUES ('kept', 1, 'image', 'processing', 0, 0)"
    )
    conn.commit()
    (site.queue / "kept").mkdir()
    (site.queue / "kept" / "original.jpg").write_bytes(b"x")
    assert sweep_aborted_commits(conn, site.content) == []
    assert (site.queue / "kept" / "original.jpg").exists()


def test_sweep_waits_while_a_commit_is_in_progress(site: Site) -> None:
    (site.queue / "inflight").mkdir()
    (site.queue / "inflight" / COMMITTING).touch()
    (site.queue / "inflight" / "original.jpg").write_bytes(b"x")
    fd = os.open(site.queue, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what commit_upload holds from its move to its COMMIT
    try:
        with no_commit_in_progress(site.queue) as quiet:
            assert not quiet
        assert sweep_aborted_commits(_conn(site), site.content) == []
        assert (site.queue / "inflight" / "original.jpg").exists()
    finally:
        os.close(fd)
    assert sweep_aborted_commits(_conn(site), site.content) == ["inflight"]


def test_empty_queue_sweeps_nothing(site: Site) -> None:
    assert sweep_aborted_commits(_conn(site), site.content) == []

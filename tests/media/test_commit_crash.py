"""A commit killed between its move into queue/ and its transaction leaves no orphan behind."""

import fcntl
import os
import sqlite3

from gremlin.media.commit import no_commit_in_progress, sweep_aborted_commits
from gremlin.store import Site


def _conn(site: Site) -> sqlite3.Connection:
    return sqlite3.connect(site.db)


def test_sweep_returns_an_aborted_commit_to_incoming(site: Site) -> None:
    aborted = site.queue / "abc123"
    aborted.mkdir()
    (aborted / "original.jpg").write_bytes(b"jpeg bytes")
    assert sweep_aborted_commits(_conn(site), site.content) == ["abc123"]
    assert not aborted.exists()
    assert (site.incoming / "aborted-abc123.bin").read_bytes() == b"jpeg bytes"


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

"""settle_original: queue/ -> originals/ once a media is ready and idle; idempotent."""

from __future__ import annotations

import os

from gremlin.actors.finish import settle_original
from gremlin.media.base import PlannedJob
from gremlin.store import Site, connect, transaction

from .fakes import add_media, rows


def settle(site: Site, media_id: str) -> bool:
    conn = connect(site.db)
    try:
        with transaction(conn):
            return settle_original(conn, site, media_id)
    finally:
        conn.close()


def set_state(site: Site, sql: str, media_id: str) -> None:
    conn = connect(site.db)
    conn.execute(sql, (media_id,))
    conn.close()


def original_path(site: Site, media_id: str) -> str:
    return rows(site, "SELECT path FROM files WHERE media_id = ? AND role = 'original'", media_id)[
        0
    ]["path"]


def test_waits_for_ready_and_idle_then_moves_once(site: Site) -> None:
    media_id = add_media(site, [PlannedJob(step="thumb", outputs={"thumb": "t.webp"})])
    assert not settle(site, media_id)  # processing, job queued
    set_state(site, "UPDATE media SET state = 'ready' WHERE id = ?", media_id)
    assert not settle(site, media_id)  # a job is still queued
    set_state(site, "UPDATE jobs SET state = 'done' WHERE media_id = ?", media_id)
    assert settle(site, media_id)
    assert original_path(site, media_id) == f"originals/{media_id}.bin"
    assert (site.originals / f"{media_id}.bin").read_bytes() == b"raw bytes"
    assert not (site.queue / f"{media_id}.bin").exists()
    assert not settle(site, media_id)  # nothing left to do


def test_crash_between_rename_and_row_is_repaired(site: Site) -> None:
    media_id = add_media(site, [])
    set_state(site, "UPDATE media SET state = 'ready' WHERE id = ?", media_id)
    os.replace(site.queue / f"{media_id}.bin", site.originals / f"{media_id}.bin")
    assert settle(site, media_id)
    assert original_path(site, media_id) == f"originals/{media_id}.bin"


def test_failed_media_keeps_its_original_queued_for_a_retry(site: Site) -> None:
    media_id = add_media(site, [])
    set_state(site, "UPDATE media SET state = 'failed' WHERE id = ?", media_id)
    assert not settle(site, media_id)
    assert original_path(site, media_id) == f"queue/{media_id}.bin"

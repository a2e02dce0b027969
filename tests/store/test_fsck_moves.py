"""A file that moves between fsck's walk of content/ and its reading of the rows (a job
settling an original from queue/ into originals/ on a live server, found by the soak run)
is not an orphan: it was seen at its old path, the row already names the new one."""

from __future__ import annotations

import os
from typing import Any

import pytest

import gremlin.actors.fsck as fsck_actor
from gremlin.actors.fsck import run_fsck
from gremlin.settings import load
from gremlin.store import Site, open_store

from .fsck_site import db, populate, put_file


def settle_m2(site: Site) -> None:
    """What finish.settle_original does for m2: rename the file, then update its row."""
    (site.content / "originals/m2").mkdir(parents=True, exist_ok=True)
    os.rename(site.content / "queue/m2/original.png", site.content / "originals/m2/original.png")
    conn = db(site)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE files SET path = 'originals/m2/original.png' WHERE path = 'queue/m2/original.png'"
    )
    conn.execute("COMMIT")
    conn.close()


async def test_an_original_settled_between_the_walk_and_the_rows_is_not_an_orphan(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(site)
    stray = put_file(site, "originals/stray.bin", b"nobody's")  # a true orphan stays one
    assert stray
    real_refs = fsck_actor._refs

    def refs_after_the_move(conn: Any) -> Any:
        if (site.content / "queue/m2/original.png").exists():
            settle_m2(site)
        return real_refs(conn)

    monkeypatch.setattr(fsck_actor, "_refs", refs_after_the_move)
    cfg = load(site.root, {"fsck_orphan_grace_seconds": 0}, environ={})
    async with open_store(site.db) as store:
        report = await run_fsck(store, site, cfg, repair=False)
    assert (site.content / "originals/m2/original.png").is_file()  # the move happened
    assert [(f.kind.value, f.path) for f in report.findings] == [("orphan", "originals/stray.bin")]

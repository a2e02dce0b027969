"""The garbage collector on a real site: stale partial uploads and finished job scratch go,
originals left in queue/ are settled, and nothing a row names (or a person might want) is
touched."""

from __future__ import annotations

import json
import time

import pytest
import trio

from gremlin.actors.gc import run_gc, serve_gc
from gremlin.proc import ProcessId
from gremlin.settings import Settings, load
from gremlin.store import Site, open_store
from tests.store.fsck_site import HOUR, add_file_row, add_media, db, make_old, put_file, snapshot


@pytest.fixture
def cfg(site: Site) -> Settings:
    return load(site.root, {"gc_interval_seconds": 3600}, environ={})


def set_job(site: Site, job_id: int | None, state: str, finished_ago: float | None) -> None:
    conn = db(site)
    finished = None if finished_ago is None else time.time() - finished_ago
    conn.execute(
        "UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?", (state, finished, job_id)
    )
    conn.close()


def make_jobs(site: Site) -> dict[str, int | None]:
    """One job per state, each with a scratch directory."""
    jobs = {}
    for name, state, ago in [
        ("done", "done", HOUR),
        ("failed", "failed", HOUR),
        ("fresh", "done", 1.0),  # finished a moment ago: the engine may still be at it
        ("running", "running", None),
        ("queued", "queued", None),
        ("alive", "done", HOUR),
        ("named", "done", HOUR),
    ]:
        jobs[name] = add_media(site, name, derived={"thumb": "thumb.webp"}, size=4000)
        set_job(site, jobs[name], state, ago)
        put_file(site, f"jobs/{jobs[name]}/log", b"log")
        put_file(site, f"jobs/{jobs[name]}/out/thumb.webp", b"out")
    me = ProcessId.current()
    record = {"pid": me.pid, "start": me.start, "boot": me.boot}
    put_file(site, f"jobs/{jobs['alive']}/pid", json.dumps(record).encode())
    conn = db(site)
    add_file_row(conn, site, "named", "odd", f"jobs/{jobs['named']}/kept.bin", b"a row names me")
    conn.close()
    put_file(site, "jobs/777/log", b"a stray dir: fsck's business, not GC's")
    return jobs


async def test_gc_removes_stale_uploads_and_finished_scratch_and_nothing_else(
    site: Site, cfg: Settings
) -> None:
    jobs = make_jobs(site)
    for name in ("old.bin", "old.json", ".old.json.tmp-12", "new.bin", "new.json"):
        put_file(site, f"incoming/{name}", b"partial")
    for name in ("old.bin", "old.json", ".old.json.tmp-12"):
        make_old(site.incoming / name, 25 * HOUR)
    put_file(site, "media/done/unknown.bin", b"an orphan: fsck quarantines it, GC never")
    before = snapshot(site)

    async with open_store(site.db) as store:
        report = await run_gc(store, site, cfg)

    assert sorted(report.uploads_removed) == [
        "incoming/.old.json.tmp-12",
        "incoming/old.bin",
        "incoming/old.json",
    ]
    assert sorted(report.scratch_removed) == sorted(f"jobs/{jobs[n]}" for n in ("done", "failed"))
    after = snapshot(site)
    gone = set(before) - set(after)
    assert gone == set(report.uploads_removed) | {
        f"jobs/{jobs[n]}/{f}" for n in ("done", "failed") for f in ("log", "out/thumb.webp")
    }
    assert all(after[rel] == sha for rel, sha in before.items() if rel in after)
    assert set(after) <= set(before)

    async with open_store(site.db) as store:  # a second round finds nothing more to do
        again = await run_gc(store, site, cfg)
    assert again.uploads_removed == again.scratch_removed == []
    assert snapshot(site) == after


async def test_gc_keeps_a_stale_upload_that_a_row_names(site: Site, cfg: Settings) -> None:
    add_media(site, "m1")
    conn = db(site)
    add_file_row(conn, site, "m1", "odd", "incoming/named.bin", b"named by a row")
    conn.close()
    make_old(site.incoming / "named.bin", 48 * HOUR)
    async with open_store(site.db) as store:
        report = await run_gc(store, site, cfg)
    assert report.uploads_removed == []
    assert (site.incoming / "named.bin").exists()


async def test_gc_settles_an_original_left_in_queue(site: Site, cfg: Settings) -> None:
    add_media(site, "ready1", original="queue/ready1/original.jpg")
    add_media(site, "busy1", original="queue/busy1/original.jpg", state="processing")
    data = (site.content / "queue/ready1/original.jpg").read_bytes()
    async with open_store(site.db) as store:
        report = await run_gc(store, site, cfg)
    assert report.originals_settled == ["ready1"]
    assert (site.content / "originals/ready1/original.jpg").read_bytes() == data
    assert not (site.content / "queue/ready1/original.jpg").exists()
    conn = db(site)
    path = conn.execute("SELECT path FROM files WHERE media_id = 'ready1'").fetchone()[0]
    assert path == "originals/ready1/original.jpg"
    assert (site.content / "queue/busy1/original.jpg").exists()  # still being processed


async def test_serve_gc_runs_a_round_at_start_and_then_every_interval(
    site: Site, cfg: Settings
) -> None:
    put_file(site, "incoming/a.bin", b"partial")
    make_old(site.incoming / "a.bin", 25 * HOUR)
    async with open_store(site.db) as store, trio.open_nursery() as nursery:
        await nursery.start(serve_gc, store, site, cfg)
        with trio.fail_after(30):
            while (site.incoming / "a.bin").exists():
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()

"""The background fsck: slices under a daily budget, a checkpoint that resumes, reports only."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import trio

from gremlin.actors.fsck_background import pause_after, run_background_slice, serve_fsck, utc_day
from gremlin.settings import Settings, load
from gremlin.store import Site, open_store
from gremlin.store.fsck_runs import Checkpoint, last_run, load_checkpoint, save_checkpoint
from gremlin.store.queries import status_counts
from tests.store.fsck_site import add_media, db, put_file, snapshot


@pytest.fixture
def cfg(site: Site) -> Settings:
    return load(site.root, {"fsck_budget_seconds_per_day": 600}, environ={})


def files_allowed(n: int):  # type: ignore[no-untyped-def]
    """A `keep_going` that lets exactly `n` files through: a budget counted in files."""
    left = [n]

    def keep_going() -> bool:
        left[0] -= 1
        return left[0] >= 0

    return keep_going


async def test_slices_resume_from_the_checkpoint_and_finish_one_pass_a_day(
    site: Site, cfg: Settings
) -> None:
    for i in range(5):
        add_media(site, f"m{i}", size=10_000)  # 5 originals
    os.truncate(site.content / "originals/m3/original.jpg", 3)
    put_file(site, "media/stray.bin", b"orphan")
    before = snapshot(site)

    async with open_store(site.db) as store:
        cp = await run_background_slice(store, site, cfg, keep_going=files_allowed(2))
        assert cp.run_id is not None and cp.cursor == 2
        cp = await run_background_slice(store, site, cfg, keep_going=files_allowed(2))
        assert cp.cursor == 4
        assert await store.read(last_run) is None  # the pass is not finished yet
        cp = await run_background_slice(store, site, cfg, keep_going=files_allowed(99))
        assert cp.run_id is None and cp.cursor == 0 and cp.last_cycle_day == utc_day(time.time())
        last = await store.read(last_run)
        assert last is not None
        kinds = sorted((f["kind"], f["path"]) for f in last["report"]["findings"])
        assert kinds == [("mismatch", "originals/m3/original.jpg"), ("orphan", "media/stray.bin")]
        assert last["report"]["files_checked"] == 5
        assert last["findings"] == 2
        assert (await store.read(status_counts))["fsck"]["findings"] == 2
        # the same day, a new pass does not start: the budget is for the next one
        again = await run_background_slice(store, site, cfg, keep_going=files_allowed(99))
        assert again.run_id is None
        runs = await store.read(lambda c: c.execute("SELECT count(*) FROM fsck_runs").fetchone())
        assert runs[0] == 1
    assert snapshot(site) == before  # it reports; it never repairs
    assert db(site).execute("SELECT damaged FROM media WHERE id = 'm3'").fetchone()[0] is None


async def test_the_checkpoint_survives_a_restart(site: Site, cfg: Settings) -> None:
    for i in range(3):
        add_media(site, f"m{i}", size=1000)
    async with open_store(site.db) as store:
        cp = await run_background_slice(store, site, cfg, keep_going=files_allowed(1))
    async with open_store(site.db) as store:  # a new server
        assert await store.read(load_checkpoint) == cp
        cp2 = await run_background_slice(store, site, cfg, keep_going=files_allowed(1))
    assert cp2.run_id == cp.run_id and cp2.cursor == cp.cursor + 1


async def test_a_spent_budget_waits_for_tomorrow(site: Site, cfg: Settings) -> None:
    add_media(site, "m0", size=1000)
    async with open_store(site.db) as store:
        today = utc_day(time.time())
        spent = Checkpoint(day=today, spent_seconds=600.0)
        await store.write(save_checkpoint, spent)
        cp = await run_background_slice(store, site, cfg)
        assert cp == spent  # nothing done
        assert await store.read(last_run) is None
    assert pause_after(cp, cfg, 0.0) == 86401.0
    working = dataclasses.replace(cp, run_id=1, spent_seconds=60.0)
    assert pause_after(working, cfg, 0.0) == 8640.0  # 600 s a day in 60 s slices: 10 a day


async def test_serve_fsck_records_a_pass(site: Site, cfg: Settings) -> None:
    add_media(site, "m0", size=1000)
    async with open_store(site.db) as store, trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_fsck(
                store, site, cfg, first_delay_seconds=0, task_status=task_status
            )
        )
        with trio.fail_after(30):
            while await store.read(last_run) is None:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


async def test_serve_fsck_is_off_with_no_budget(site: Site) -> None:
    off = load(site.root, {"fsck_budget_seconds_per_day": 0}, environ={})
    async with open_store(site.db) as store:
        with trio.fail_after(5):
            await serve_fsck(store, site, off, first_delay_seconds=0)  # returns at once
        assert await store.read(last_run) is None

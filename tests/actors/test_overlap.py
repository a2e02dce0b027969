"""A job's finishing (hash, move, one transaction) does not hold a concurrency slot: the next
job's process starts as soon as the previous one's has exited."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gremlin.actors import jobs
from gremlin.media.base import PlannedJob
from gremlin.settings import Settings
from gremlin.store import Site

from .fakes import FakeType, add_media, job_rows, media_row, media_state, rows, script, wait_for

THUMB = PlannedJob(step="thumb", outputs={"thumb": "thumb.txt"})

BODY = (
    "with open(here / 'live', 'a') as f: f.write('+')  # O_APPEND: one atomic write\n"
    "(out / 'thumb.txt').write_text('thumb of ' + input.read_text())\n"
    "with open(here / 'live', 'a') as f: f.write('-')\n"
)


async def test_next_job_starts_while_the_previous_one_is_finishing(
    site: Site, fast: Settings, engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(fast, jobs_concurrency=1)
    fake = FakeType({"thumb": script(tmp_path, "ok", BODY)})
    first, second = add_media(site, [THUMB]), add_media(site, [THUMB])
    [second_job] = job_rows(site, second)
    second_status = site.jobs / str(second_job["id"]) / "status"
    real_finish = jobs.finish_job

    def second_ran() -> bool:  # its status file, or already finished (and the file removed)
        return second_status.exists() or job_rows(site, second)[0]["state"] == "done"

    async def held_finish(*args: Any, **kwargs: Any) -> Any:
        job = args[4]
        if job.media_id == first:
            # The first job stays "finishing" until the second job's process has run to its
            # end: with the slot held by finishing this would never happen.
            await wait_for(second_ran, timeout=15, what="the second job's process")
        return await real_finish(*args, **kwargs)

    monkeypatch.setattr(jobs, "finish_job", held_finish)
    async with engine(settings, {"fake": fake}):
        for media_id in (first, second):
            await wait_for(media_state(site, media_id, "ready", "failed"))

    assert media_row(site, first)["state"] == media_row(site, second)["state"] == "ready"
    [a], [b] = job_rows(site, first), job_rows(site, second)
    assert a["started_at"] < b["started_at"] < a["finished_at"]  # claimed before the first's commit
    # ... and still never two job processes at once (jobs_concurrency = 1).
    assert (tmp_path / "live").read_text() == "+-+-"
    stored = rows(site, "SELECT path FROM files WHERE role = 'thumb' ORDER BY path")
    assert {r["path"] for r in stored} == {f"media/{first}/thumb.txt", f"media/{second}/thumb.txt"}

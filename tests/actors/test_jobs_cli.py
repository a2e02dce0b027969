"""`gremlin jobs` and `gremlin retry` through the real CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from gremlin.cli import cli
from gremlin.media.base import PlannedJob
from gremlin.store import Site, connect
from tests.conftest import run_gremlin

from .fakes import add_media, job_rows, media_row


def gremlin(*args: str) -> Result:
    """In process (the subprocess round trip is tested once, below)."""
    return CliRunner().invoke(cli, list(args), prog_name="gremlin")


def fail_first_job(site: Site, media_id: str) -> None:
    conn = connect(site.db)
    first, second = (r["id"] for r in job_rows(site, media_id))
    conn.execute(
        "UPDATE jobs SET state = 'failed', attempt = 3, reason = 'exited 1: boom' WHERE id = ?",
        (first,),
    )
    conn.execute(
        "UPDATE jobs SET state = 'done', attempt = 1, progress = 1 WHERE id = ?", (second,)
    )
    conn.execute(
        "UPDATE media SET state = 'failed', reason = 'thumb: exited 1: boom (attempt 3 of 3)'"
        " WHERE id = ?",
        (media_id,),
    )
    conn.close()


def test_jobs_json_and_retry_requeues_only_the_failed_job(site: Site) -> None:
    media_id = add_media(
        site,
        [
            PlannedJob(step="thumb", outputs={"thumb": "t.webp"}),
            PlannedJob(step="medium", outputs={"medium": "m.webp"}),
        ],
    )
    fail_first_job(site, media_id)
    listed = run_gremlin("jobs", str(site.root), "--json")  # the real executable, once
    assert listed.returncode == 0, listed.stderr
    thumb, medium = json.loads(listed.stdout)
    assert set(thumb) == {
        "id", "media_id", "step", "state", "attempt", "max_attempts", "progress", "pid", "reason",
    }  # fmt: skip
    assert (thumb["step"], thumb["state"], thumb["attempt"], thumb["reason"]) == (
        "thumb", "failed", 3, "exited 1: boom",
    )  # fmt: skip
    assert (medium["state"], medium["progress"]) == ("done", 1)

    text = gremlin("jobs", str(site.root))
    assert "thumb" in text.stdout and "exited 1: boom" in text.stdout

    retried = gremlin("retry", str(site.root), media_id)
    assert retried.exit_code == 0, retried.stderr
    assert "requeued 1 job" in retried.stdout
    thumb_row, medium_row = job_rows(site, media_id)
    assert (thumb_row["state"], thumb_row["attempt"], thumb_row["reason"]) == ("queued", 0, None)
    assert (medium_row["state"], medium_row["attempt"]) == ("done", 1)
    assert (media_row(site, media_id)["state"], media_row(site, media_id)["reason"]) == (
        "processing", None,
    )  # fmt: skip

    again = gremlin("retry", str(site.root), media_id)
    assert again.exit_code == 1 and "no failed jobs" in again.stderr


def test_retry_of_unknown_media_is_a_handled_error(site: Site) -> None:
    result = gremlin("retry", str(site.root), "nosuchmedia")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no media nosuchmedia")
    assert "Try: " in result.stderr

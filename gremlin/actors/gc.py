"""The garbage collector: a periodic actor that only ever removes what no person could want.

Each round (every `gc_interval_seconds`, the first at start-up):
  0. files of commits aborted by a crash (in queue/ with their commit's mark and no media row,
     while no commit is in progress) go back to content/incoming/, as the unacknowledged
     partial uploads they are; a queue/ directory without the mark was acknowledged (its row
     is missing because an older database was put back) and is left to fsck;
  1. partial uploads in content/incoming/ untouched for `incoming_stale_hours` are removed
     (all parts of one upload: <id>.bin, <id>.json, their temporaries);
  2. scratch directories content/jobs/<id>/ of finished jobs (done or failed) are removed, once
     finished for SCRATCH_GRACE_SECONDS and when no live process is recorded in them (the job
     engine removes its own at once; these are left by a crash);
  3. raw originals left in content/queue/ by a crash are settled into content/originals/ (the
     job engine's `settle_original`: rename first, then the row follows).
It never removes a file a files row names: each removal re-checks the rows inside the write
transaction, so no commit can slip in between. Unknown files are fsck's business (quarantine),
never the GC's.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
import time

import trio

from ..errors import Maintenance
from ..media.commit import sweep_aborted_commits
from ..settings import Settings
from ..store import Site, Store
from ..store import fsck as checks
from ..store import fsck_repair as repairs
from .finish import settle_original  # the job engine's: the move is written once

log = logging.getLogger(__name__)

SCRATCH_GRACE_SECONDS = 60.0


@dataclasses.dataclass
class GcReport:
    uploads_removed: list[str] = dataclasses.field(default_factory=list)
    scratch_removed: list[str] = dataclasses.field(default_factory=list)
    originals_settled: list[str] = dataclasses.field(default_factory=list)
    commits_returned: list[str] = dataclasses.field(default_factory=list)


def remove_finished_scratch(
    conn: sqlite3.Connection, site: Site, name: str, finished_before: float
) -> bool:
    """In a write transaction: remove jobs/<name>/ if its job is done or failed (since before
    `finished_before`), no row names a file in it, and no live process is recorded in it."""
    if not name.isdigit():
        return False  # not a job's directory: a stray, fsck reports it
    job = conn.execute("SELECT state, finished_at FROM jobs WHERE id = ?", (int(name),)).fetchone()
    if job is None or job["state"] not in ("done", "failed"):
        return False
    if job["finished_at"] is not None and job["finished_at"] > finished_before:
        return False
    if repairs.rows_under(conn, f"jobs/{name}"):
        return False
    path = site.jobs / name
    if not path.is_dir() or repairs.live_process_in(path) is not None:
        return False
    shutil.rmtree(path)
    return True


def unsettled_originals(conn: sqlite3.Connection) -> list[str]:
    """Ready media whose raw original is still in queue/ with no job pending."""
    rows = conn.execute(
        "SELECT files.media_id FROM files JOIN media ON media.id = files.media_id"
        " WHERE files.role = 'original' AND files.path LIKE 'queue/%' AND media.state = 'ready'"
        " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.media_id = media.id"
        "                 AND jobs.state IN ('queued', 'running'))"
    )
    return [r[0] for r in rows]


async def run_gc(
    store: Store,
    site: Site,
    settings: Settings,
    *,
    scratch_grace_seconds: float = SCRATCH_GRACE_SECONDS,
) -> GcReport:
    """One round of garbage collection."""
    report = GcReport()
    swept = await store.read(sweep_aborted_commits, site.content)
    report.commits_returned.extend(swept)
    stale_seconds = settings.incoming_stale_hours * 3600
    stale = await trio.to_thread.run_sync(
        checks.find_stale_uploads, site, time.time(), stale_seconds
    )
    for finding in stale:
        outcome = await store.write(repairs.repair_stale_upload, site, finding, stale_seconds)
        if outcome.action is repairs.Action.REMOVED:
            report.uploads_removed.extend(finding.members)
            log.info("gc removed stale upload path=%s: %s", finding.path, finding.detail)

    finished_before = time.time() - scratch_grace_seconds
    for name in await trio.to_thread.run_sync(checks.job_dir_names, site):
        if await store.write(remove_finished_scratch, site, name, finished_before):
            report.scratch_removed.append(f"jobs/{name}")
            log.info("gc removed finished job scratch job=%s", name)

    for media_id in await store.read(unsettled_originals):
        if await store.write(settle_original, site, media_id):
            report.originals_settled.append(media_id)
            log.info("gc settled original media=%s into originals/", media_id)
    return report


async def serve_gc(
    store: Store,
    site: Site,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a GC round every `gc_interval_seconds` (the first at once), pausing in maintenance."""
    task_status.started()
    while True:
        if not store.frozen:
            try:
                await run_gc(store, site, settings)
            except Maintenance:
                pass  # an upgrade froze the store mid-round: the next round finishes the work
        await trio.sleep(settings.gc_interval_seconds)

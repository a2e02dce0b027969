"""The background fsck: the checks of `gremlin fsck`, spending at most
`fsck_budget_seconds_per_day` a day in slices spread over the day, resuming from a checkpoint
kept in `meta` (gremlin.store.fsck_runs), one complete pass recorded as one fsck run. It only
reports: it never repairs on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from ..errors import Maintenance
from ..settings import Settings
from ..store import Site, Store
from ..store import fsck as checks
from ..store import fsck_runs as runs
from .diskspace import is_disk_full
from .fsck import VERIFIED_BATCH, check_structure, verify_rows

log = logging.getLogger(__name__)

SLICE_SECONDS = 60.0  # the background check works in slices this long at most
DAY_SECONDS = 86400.0


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _save_and_report(conn: Any, cp: runs.Checkpoint, report: dict[str, Any]) -> None:
    assert cp.run_id is not None
    runs.update_run(conn, cp.run_id, report)
    runs.save_checkpoint(conn, cp)


def _finish_pass(
    conn: Any, cp: runs.Checkpoint, run_id: int, findings: int, report: dict[str, Any]
) -> None:
    runs.finish_run(conn, run_id, time.time(), findings, report)
    runs.save_checkpoint(conn, cp)


async def run_background_slice(
    store: Store,
    site: Site,
    settings: Settings,
    *,
    slice_seconds: float = SLICE_SECONDS,
    keep_going: Callable[[], bool] | None = None,
) -> runs.Checkpoint:
    """Verify files after the checkpoint for at most `slice_seconds` of today's budget; when
    every file is covered, check the tree and finish the pass's fsck_runs row. One pass starts
    per UTC day at most. Returns the new checkpoint."""
    now = time.time()
    today = utc_day(now)
    cp = await store.read(runs.load_checkpoint)
    if cp.day != today:
        cp = dataclasses.replace(cp, day=today, spent_seconds=0.0)
    budget_left = settings.fsck_budget_seconds_per_day - cp.spent_seconds
    if budget_left <= 0 or (cp.run_id is None and cp.last_cycle_day == today):
        return cp
    if cp.run_id is None:
        run_id = await store.write(runs.start_run, now, {"mode": "background", "findings": []})
        cp = dataclasses.replace(cp, run_id=run_id, cursor=0, last_cycle_day=today)
        log.info("background fsck pass started run=%d", run_id)
    assert cp.run_id is not None
    report = await store.read(runs.run_report, cp.run_id) or {}
    report.setdefault("mode", "background")
    began = trio.current_time()
    deadline = began + min(slice_seconds, budget_left)
    if keep_going is None:
        keep_going = lambda: trio.current_time() < deadline  # noqa: E731
    finished = False
    while True:
        batch = await store.read(checks.file_rows, cp.cursor, VERIFIED_BATCH)
        if not batch:
            finished = True
            break
        done = await verify_rows(store, site, batch, keep_going=keep_going)
        report["findings"] = report.get("findings", []) + [f.to_json() for f in done.findings]
        report["files_checked"] = report.get("files_checked", 0) + done.files
        report["bytes_checked"] = report.get("bytes_checked", 0) + done.nbytes
        cp = dataclasses.replace(cp, cursor=max(cp.cursor, done.last_id))
        if done.files < len(batch):
            break  # out of time for this slice
    spent = cp.spent_seconds + (trio.current_time() - began)
    if finished:
        structure = await check_structure(store, site, settings)
        report["findings"] += [f.to_json() for f in structure]
        report["remaining"] = len(report["findings"])
        pass_id = cp.run_id
        cp = dataclasses.replace(cp, run_id=None, cursor=0, spent_seconds=spent)
        await store.write(_finish_pass, cp, pass_id, len(report["findings"]), report)
        log.info("background fsck pass done run=%d findings=%d", pass_id, len(report["findings"]))
    else:
        cp = dataclasses.replace(cp, spent_seconds=spent)
        await store.write(_save_and_report, cp, report)
    return cp


def pause_after(cp: runs.Checkpoint, settings: Settings, now: float) -> float:
    """Seconds until the next slice: spread the budget over the day; wait for tomorrow once
    today's pass is done or the budget is spent."""
    budget = settings.fsck_budget_seconds_per_day
    to_tomorrow = DAY_SECONDS - (now % DAY_SECONDS) + 1.0
    if cp.run_id is None or cp.spent_seconds >= budget:
        return to_tomorrow
    slices_per_day = max(1.0, budget / SLICE_SECONDS)
    return min(DAY_SECONDS / slices_per_day, to_tomorrow)


async def serve_fsck(
    store: Store,
    site: Site,
    settings: Settings,
    *,
    first_delay_seconds: float = 60.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The background check. Off when `fsck_budget_seconds_per_day` is 0."""
    task_status.started()
    if settings.fsck_budget_seconds_per_day <= 0:
        log.info("background fsck off (fsck_budget_seconds_per_day = 0)")
        return
    await trio.sleep(first_delay_seconds)
    while True:
        try:
            cp = await run_background_slice(store, site, settings)
        except Maintenance:
            await trio.sleep(60)
            continue
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warning("background fsck slice skipped: disk full; next try in 60 s")
            await trio.sleep(60)
            continue
        await trio.sleep(pause_after(cp, settings, time.time()))

"""fsck runs: `run_fsck` (one whole pass, what `gremlin fsck` calls) and `serve_fsck`, the
background check that spends at most `fsck_budget_seconds_per_day` a day, resumes from its
checkpoint, and only reports: it never repairs on its own.

Hashing runs in a worker thread, 1 MiB reads; the tree is walked before rows are read (see
gremlin.store.fsck for why), and every repair re-checks inside its write transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from ..errors import Maintenance
from ..settings import Settings
from ..store import Site, Store
from ..store import fsck as checks
from ..store import fsck_repair as repairs
from ..store import fsck_runs as runs
from ..store.fsck import FileRow, Finding, Kind
from .finish import settle_original  # the job engine's: the move is written once

log = logging.getLogger(__name__)

SLICE_SECONDS = 60.0  # the background check works in slices this long at most
DAY_SECONDS = 86400.0
VERIFIED_BATCH = 256  # verified_at is written this many files at a time


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...  # called from a worker thread
    def finish(self) -> None: ...


@dataclasses.dataclass
class Report:
    run_id: int
    mode: str
    repair: bool
    label: str
    findings: list[Finding] = dataclasses.field(default_factory=list)
    outcomes: list[repairs.Outcome] = dataclasses.field(default_factory=list)
    files_checked: int = 0
    bytes_checked: int = 0

    @property
    def remaining(self) -> int:
        """Findings still standing: found, and not resolved by a repair."""
        return len(self.findings) - sum(1 for o in self.outcomes if o.resolved)

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": [f.to_json() for f in self.findings],
            "repaired": [o.to_json() for o in self.outcomes if o.action is not None],
            "left": [o.to_json() for o in self.outcomes if o.action is None and not o.resolved],
            "remaining": self.remaining,
            "run_id": self.run_id,
            "mode": self.mode,
            "repair": self.repair,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
        }


def run_label(run_id: int, at: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at)) + f"-run{run_id}"


# -- the checks, shared by both kinds of run ---------------------------------------------------


def _walk(site: Site) -> tuple[list[str], dict[str, os.stat_result]]:
    return checks.job_dir_names(site), dict(checks.walk_stored(site))


def _refs(conn: Any) -> tuple[set[str], set[int]]:
    return checks.referenced_paths(conn), checks.job_ids(conn)


async def check_structure(store: Store, site: Site, settings: Settings) -> list[Finding]:
    """Orphans, stale uploads and stray job dirs. The tree is walked BEFORE rows are read."""
    names, tree = await trio.to_thread.run_sync(_walk, site)
    referenced, ids = await store.read(_refs)
    stale_seconds = settings.incoming_stale_hours * 3600
    stale = await trio.to_thread.run_sync(
        checks.find_stale_uploads, site, time.time(), stale_seconds
    )
    orphans = checks.find_orphans(tree, referenced)
    return orphans + stale + checks.find_stray_job_dirs(site, names, ids)


@dataclasses.dataclass
class Verified:
    findings: list[Finding] = dataclasses.field(default_factory=list)
    files: int = 0
    nbytes: int = 0
    last_id: int = 0


async def verify_rows(
    store: Store,
    site: Site,
    rows: Sequence[FileRow],
    *,
    progress: Progress | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> Verified:
    """Hash each row's file in a worker thread; record verified_at for those that match."""
    out = Verified()
    cancelled = threading.Event()
    ok: list[int] = []

    def on_chunk(n: int) -> None:
        if cancelled.is_set():
            raise checks.Interrupted()
        if progress is not None:
            progress.advance(n)

    try:
        for row in rows:
            if not keep_going():
                break
            finding = await trio.to_thread.run_sync(
                checks.verify, site, row, on_chunk, abandon_on_cancel=True
            )
            if finding is not None:
                # A row may change under us (an original settled into originals/, a job re-run,
                # a media deleted): judge the file by the row as it is now.
                current = await store.read(checks.file_row_by_id, row.id)
                if current is None:
                    finding = None
                elif current != row:
                    row = current
                    finding = await trio.to_thread.run_sync(
                        checks.verify, site, row, on_chunk, abandon_on_cancel=True
                    )
            out.files += 1
            out.nbytes += row.size
            out.last_id = row.id
            if finding is None:
                ok.append(row.id)
            else:
                out.findings.append(finding)
                log.warning(
                    "fsck finding=%s path=%s media=%s", finding.kind.value, row.path, row.media_id
                )
            if len(ok) >= VERIFIED_BATCH:
                await store.write(checks.mark_verified, ok, time.time())
                ok = []
    finally:
        cancelled.set()
    if ok:
        await store.write(checks.mark_verified, ok, time.time())
    return out


# -- one whole run -----------------------------------------------------------------------------


async def run_fsck(
    store: Store,
    site: Site,
    settings: Settings,
    *,
    repair: bool = False,
    progress: Progress | None = None,
    mode: str = "cli",
) -> Report:
    """Check everything once (and repair if asked); record the run in fsck_runs."""
    started = time.time()
    run_id = await store.write(runs.start_run, started, {"mode": mode, "repair": repair})
    report = Report(run_id, mode, repair, run_label(run_id, started))
    structure = await check_structure(store, site, settings)
    rows = await store.read(checks.file_rows)
    if progress is not None:
        progress.start(len(rows), sum(r.size for r in rows))
    try:
        verified = await verify_rows(store, site, rows, progress=progress)
    finally:
        if progress is not None:
            progress.finish()
    report.findings = verified.findings + structure
    report.files_checked, report.bytes_checked = verified.files, verified.nbytes
    if repair:
        report.outcomes = await repair_all(store, site, settings, report.findings, report.label)
    await store.write(runs.finish_run, run_id, time.time(), report.remaining, report.to_json())
    log.info(
        "fsck done run=%d findings=%d remaining=%d", run_id, len(report.findings), report.remaining
    )
    return report


def _orphan_wait(site: Site, findings: Sequence[Finding], grace: float) -> float:
    """How long until every orphan found is `grace` seconds old (files being committed land
    in their place a moment before their row: give such a commit time to finish)."""
    wait = 0.0
    now = time.time()
    for f in findings:
        if f.kind is Kind.ORPHAN:
            try:
                age = now - checks.changed_at((site.content / f.path).lstat())
            except FileNotFoundError:
                continue
            wait = max(wait, grace - age)
    return min(wait, grace)


async def repair_all(
    store: Store, site: Site, settings: Settings, findings: Sequence[Finding], label: str
) -> list[repairs.Outcome]:
    grace = settings.fsck_orphan_grace_seconds
    quarantine = site.quarantine / label
    if (wait := _orphan_wait(site, findings, grace)) > 0:
        log.info("fsck waiting %.1fs for recently written files to settle", wait)
        await trio.sleep(wait)
    stale_seconds = settings.incoming_stale_hours * 3600
    outcomes = []
    for f in findings:
        match f.kind:
            case Kind.ORPHAN:
                outcome = await store.write(repairs.repair_orphan, site, f, quarantine, grace)
            case Kind.MISSING | Kind.MISMATCH:
                settled = await _settled(store, site, f)
                if settled is not None:
                    outcome = settled
                else:
                    outcome = await store.write(repairs.repair_file, site, f, quarantine, label)
            case Kind.STALE_UPLOAD:
                outcome = await store.write(repairs.repair_stale_upload, site, f, stale_seconds)
            case Kind.STRAY_JOB_DIR:
                outcome = await store.write(repairs.repair_stray_job_dir, site, f)
        action = outcome.action.value if outcome.action else "none"
        log.info(
            "fsck repair kind=%s path=%s action=%s: %s",
            f.kind.value,
            f.path,
            action,
            outcome.detail,
        )
        outcomes.append(outcome)
    return outcomes


async def _settled(store: Store, site: Site, f: Finding) -> repairs.Outcome | None:
    """A missing original in queue/ that a crash left moved to originals/: the row follows."""
    if f.kind is not Kind.MISSING or f.row is None or not f.row.is_original:
        return None
    if not f.path.startswith("queue/"):
        return None
    if not await store.write(settle_original, site, f.row.media_id):
        return None
    detail = "its file was already in originals/ (a move cut short): the row now follows it"
    return repairs.Outcome(f, repairs.Action.SETTLED, detail, resolved=True)


# -- the background check ----------------------------------------------------------------------


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
        await trio.sleep(pause_after(cp, settings, time.time()))

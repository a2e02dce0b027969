"""fsck runs: `run_fsck`, one whole pass (what `gremlin fsck` calls), and the checks it shares
with the background check (gremlin.actors.fsck_background).

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

from ..settings import Settings
from ..store import Site, Store
from ..store import fsck as checks
from ..store import fsck_repair as repairs
from ..store import fsck_runs as runs
from ..store.fsck import FileRow, Finding, Kind
from .finish import settle_original  # the job engine's: the move is written once

log = logging.getLogger(__name__)

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
    cleared: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # damaged flags

    @property
    def remaining(self) -> int:
        """Findings still standing: found, and not resolved by a repair."""
        return len(self.findings) - sum(1 for o in self.outcomes if o.resolved)

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": [f.to_json() for f in self.findings],
            "repaired": [o.to_json() for o in self.outcomes if o.action is not None],
            "left": [o.to_json() for o in self.outcomes if o.action is None and not o.resolved],
            "cleared": self.cleared,
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
    if orphans:
        orphans = await trio.to_thread.run_sync(checks.still_there, site, orphans, tree)
    return orphans + stale + checks.find_stray_job_dirs(site, names, ids)


@dataclasses.dataclass
class Verified:
    findings: list[Finding] = dataclasses.field(default_factory=list)
    files: int = 0
    nbytes: int = 0
    last_id: int = 0
    sound_originals: list[FileRow] = dataclasses.field(default_factory=list)


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
                    out.files += 1
                    out.last_id = row.id
                    continue  # its media was deleted meanwhile: nothing to judge
                if current != row:
                    row = current
                    finding = await trio.to_thread.run_sync(
                        checks.verify, site, row, on_chunk, abandon_on_cancel=True
                    )
            out.files += 1
            out.nbytes += row.size
            out.last_id = row.id
            if finding is None:
                ok.append(row.id)
                if row.is_original:
                    out.sound_originals.append(row)
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
        for row in verified.sound_originals:  # restored from a backup since it was flagged
            if (reason := await store.write(repairs.clear_damaged, row)) is not None:
                report.cleared.append(
                    {
                        "media_id": row.media_id,
                        "path": row.path,
                        "detail": f"its original verifies again (was: {reason})",
                    }
                )
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

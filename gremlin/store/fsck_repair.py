"""What `gremlin fsck --repair` does about each finding, one finding at a time.

Each repair that touches a row-backed file is a query run inside the store's write transaction
(BEGIN IMMEDIATE): it re-checks what it found against the rows as they are NOW, with every other
writer held off, and only then moves a file. Nothing is deleted except stale partial uploads and
stray job directories; files taken out of service go to content/quarantine/<run>/<path>.

    orphan          -> quarantine (if still no row refers to it and it is not changing)
    missing/mismatch of a derived file -> the corrupt file to quarantine, its row dropped,
                       the job that makes it queued again with fresh attempts, media processing
    missing/mismatch of an original    -> media.damaged set with the reason; nothing moved
                       (cleared again by a later repair once the original verifies)
                       (unless a crash cut the move queue/ -> originals/ short: the row follows)
    stale_upload    -> removed
    stray_job_dir   -> removed, unless a live process is recorded in it
Running repair again changes nothing: every step checks the state it would produce first.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import sqlite3
import stat
import time
from pathlib import Path, PurePosixPath
from typing import Any

from ..proc import ProcessId
from .content import fsync_dir, move_durable
from .fsck import (
    FileRow,
    Finding,
    Kind,
    changed_at,
    file_row_by_id,
    file_row_by_path,
    find_stale_uploads,
    identity,
    storable,
    upload_id,
)
from .site import Site

DAMAGED_PREFIX = "original "  # media.damaged reasons fsck sets (and may clear) start so


class Action(enum.Enum):
    QUARANTINED = "quarantined"
    REQUEUED = "requeued"
    FLAGGED_DAMAGED = "flagged_damaged"
    REMOVED = "removed"
    SETTLED = "settled"  # an original's row follows its file, moved to originals/ by a crash


@dataclasses.dataclass(frozen=True)
class Outcome:
    finding: Finding
    action: Action | None  # None: nothing changed
    detail: str
    resolved: bool  # the finding is gone (or will be, once a requeued job has run)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.finding.to_json().items() if k != "detail"}
        if self.action is not None:
            out["action"] = self.action.value
        out["detail"] = self.detail
        return out


def _changed(f: Finding, detail: str) -> Outcome:
    return Outcome(f, None, detail, resolved=True)


def _left(f: Finding, detail: str) -> Outcome:
    return Outcome(f, None, detail, resolved=False)


def quarantine_target(quarantine: Path, rel: str) -> Path:
    """content/quarantine/<run>/<rel>, never over an existing file."""
    target = quarantine / rel
    n = 1
    while target.exists() or target.is_symlink():
        target = quarantine / f"{rel}.{n}"
        n += 1
    return target


def quarantine_file(path: Path, target: Path) -> None:
    """Rename `path` to `target`, creating (and fsyncing into their parents) every new directory
    on the way, so that after a power cut the file is in one place or the other, never lost."""
    missing = []
    parent = target.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
        fsync_dir(directory.parent)
    move_durable(path, target)


def live_process_in(job_dir: Path) -> str | None:
    """Why `job_dir` must be left alone (a live or unreadable process record), else None."""
    pid_file = job_dir / "pid"
    try:
        data = json.loads(pid_file.read_text())
        if not data.get("pid"):
            return None  # an abandon mark: no process ever ran here
        process = ProcessId(int(data["pid"]), int(data["start"]), str(data["boot"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its pid file is unreadable, so its process may be alive"
    if process.alive():
        return f"process {process.pid} recorded in it is alive"
    return None


# -- the repairs -------------------------------------------------------------------------------


def repair_orphan(
    conn: sqlite3.Connection, site: Site, f: Finding, quarantine: Path, grace_seconds: float
) -> Outcome:
    path = site.content / f.path  # from our own walk; a symlink is moved, never followed
    try:
        st = path.lstat()
    except FileNotFoundError:
        return _changed(f, "gone already")
    if file_row_by_path(conn, f.path) is not None:
        return _changed(f, "a row refers to it now: left in place")
    age = time.time() - changed_at(st)
    if age < grace_seconds:
        return _left(
            f, f"changed {age:.0f} s ago, it may be an upload being committed: run fsck again"
        )
    target = quarantine_target(quarantine, f.path)
    quarantine_file(path, target)
    moved = target.relative_to(site.content).as_posix()
    return Outcome(f, Action.QUARANTINED, f"moved to {moved}", resolved=True)


def _making_job(conn: sqlite3.Connection, media_id: str, role: str, path: str) -> Any:
    for job in conn.execute("SELECT * FROM jobs WHERE media_id = ? ORDER BY id", (media_id,)):
        outputs = json.loads(job["params"] or "{}").get("outputs", {})
        made = {f"media/{media_id}/{name}" for name in outputs.values()}
        if path == job["output_path"] or path in made or role in outputs:
            return job
    return None


def requeue_job(conn: sqlite3.Connection, site: Site, job: Any, now: float) -> str:
    """Queue a finished job again with fresh attempts; its media goes back to processing."""
    if job["state"] in ("queued", "running"):
        return f"job {job['id']} ({job['step']}) is already {job['state']}"
    conn.execute(
        "UPDATE jobs SET state = 'queued', attempt = 0, not_before = 0, pid = NULL,"
        " pid_start = NULL, boot_id = NULL, started_at = NULL, finished_at = NULL,"
        " progress = 0, exit_code = NULL, reason = NULL, log_tail = NULL WHERE id = ?",
        (job["id"],),
    )
    # A ready media shows "processing" until a blocking job's file is re-made. A failed one
    # stays failed (another job of it failed: its retry action brings it back).
    if job["blocking"]:
        conn.execute(
            "UPDATE media SET state = 'processing', updated_at = ?"
            " WHERE id = ? AND state = 'ready'",
            (now, job["media_id"]),
        )
    scratch = site.jobs / str(job["id"])
    if scratch.is_dir() and live_process_in(scratch) is None:
        shutil.rmtree(scratch)  # finished job scratch: the re-run starts clean
    return f"job {job['id']} ({job['step']}) queued again"


def repair_file(
    conn: sqlite3.Connection, site: Site, f: Finding, quarantine: Path, run_label: str
) -> Outcome:
    """A missing or mismatched file, re-checked against its row inside the transaction."""
    assert f.row is not None
    row = file_row_by_path(conn, f.path)
    if row is None or (row.id, row.size, row.sha256) != (f.row.id, f.row.size, f.row.sha256):
        return _changed(f, "its row changed since it was checked: left for the next run")
    path = site.path(f.path)
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    if f.kind is Kind.MISSING and st is not None and stat.S_ISREG(st.st_mode):
        return _left(f, "the file is back: run fsck again")
    # Not a file there (a directory, a fifo): taken away to quarantine/ as a mismatch is.
    if f.kind is Kind.MISMATCH and (st is None or identity(st) != f.identity):
        return _left(f, "the file changed since it was hashed: run fsck again")
    if row.is_original:
        return _flag_damaged(conn, f, run_label)
    job = _making_job(conn, row.media_id, row.role, row.path)
    if job is None:
        return _left(f, f"no job makes the {row.role} file, so it cannot be re-made")
    moved = ""
    if st is not None:
        target = quarantine_target(quarantine, f.path)
        quarantine_file(path, target)
        moved = f"moved to {site.relative(target)}; "
    conn.execute("DELETE FROM files WHERE id = ?", (row.id,))
    requeued = requeue_job(conn, site, job, time.time())
    return Outcome(f, Action.REQUEUED, moved + requeued, resolved=True)


def _flag_damaged(conn: sqlite3.Connection, f: Finding, run_label: str) -> Outcome:
    current = conn.execute("SELECT damaged FROM media WHERE id = ?", (f.media_id,)).fetchone()
    if current is None:
        return _left(f, "its media row is gone")
    if current["damaged"]:
        return _left(f, f"media already flagged damaged: {current['damaged']}")
    reason = f"{DAMAGED_PREFIX}{f.kind.value}: {f.detail} (found by fsck {run_label})"
    conn.execute(
        "UPDATE media SET damaged = ?, updated_at = ? WHERE id = ?",
        (reason, time.time(), f.media_id),
    )
    return Outcome(
        f,
        Action.FLAGGED_DAMAGED,
        "media flagged damaged; the original is left as it is: restore it from a backup",
        resolved=False,
    )


def rows_under(conn: sqlite3.Connection, rel: str) -> bool:
    """Does any files row name `rel` or a path inside it?"""
    if not storable(rel):
        return False  # nor can a path inside it be stored
    row = conn.execute(
        "SELECT 1 FROM files WHERE path = ? OR substr(path, 1, ?) = ? LIMIT 1",
        (rel, len(rel) + 1, rel + "/"),
    ).fetchone()
    return row is not None


def clear_damaged(conn: sqlite3.Connection, row: FileRow) -> str | None:
    """Clear the damaged flag fsck set on a media whose original (`row`, just verified) is
    sound again, e.g. restored from a backup. Returns the old reason, or None if unchanged."""
    if file_row_by_id(conn, row.id) != row:
        return None
    media = conn.execute("SELECT damaged FROM media WHERE id = ?", (row.media_id,)).fetchone()
    if media is None or not (media["damaged"] or "").startswith(DAMAGED_PREFIX):
        return None
    conn.execute(
        "UPDATE media SET damaged = NULL, updated_at = ? WHERE id = ?", (time.time(), row.media_id)
    )
    return str(media["damaged"])


def repair_stale_upload(
    conn: sqlite3.Connection, site: Site, f: Finding, stale_seconds: float
) -> Outcome:
    """Remove every part of a partial upload, if it is still untouched and no row names it."""
    uid = upload_id(PurePosixPath(f.path).name)
    still = {g.path for g in find_stale_uploads(site, time.time(), stale_seconds, only=uid)}
    if f.path not in still:
        return _changed(f, "touched or finished since it was found: left in place")
    if any(rows_under(conn, rel) for rel in f.members):
        return _left(f, "a files row names it: left in place")
    for rel in f.members:
        path = site.content / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return Outcome(f, Action.REMOVED, f"removed {len(f.members)} part(s)", resolved=True)


def repair_stray_job_dir(conn: sqlite3.Connection, site: Site, f: Finding) -> Outcome:
    name = f.path.removeprefix("jobs/")
    path = site.jobs / name
    if not path.is_dir():
        return _changed(f, "gone already")
    if name.isdigit() and conn.execute("SELECT 1 FROM jobs WHERE id = ?", (int(name),)).fetchone():
        return _changed(f, "a job row names it now: left in place")
    if rows_under(conn, f.path):
        return _left(f, "a files row names a file inside it: left in place")
    if (why := live_process_in(path)) is not None:
        return _left(f, f"left in place: {why}")
    shutil.rmtree(path)
    return Outcome(f, Action.REMOVED, "removed", resolved=True)

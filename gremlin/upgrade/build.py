"""Building a new database file for an upgrade: what every copy shares (copy.py builds from
the rows or the pages of a live database, recopy.py from the frozen file inside the handover
window). The new file is disposable until complete: built without a journal or syncs, then
the remaining schema steps (the transformation), optionally PRAGMA integrity_check, WAL mode,
and one fsync. Any failure removes it.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import GremlinError
from ..store import Step, apply_steps, connect, fsync_file, transaction
from ..store.handover import Stage, set_stage
from .protocol import UpgradeError
from .swap import close_checkpointed, remove_database

log = logging.getLogger(__name__)

# The new file is disposable until complete: no journal, no syncs, a large page cache.
BUILD_PRAGMAS = (
    "PRAGMA synchronous = OFF",  # first: leaving WAL mode (recopy.py) then syncs nothing
    "PRAGMA journal_mode = OFF",
    "PRAGMA cache_size = -262144",  # KiB: 256 MiB at most, only as much as the data needs
    "PRAGMA temp_store = MEMORY",
)


class CopyFailed(UpgradeError):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"copying the data into the new database failed: {why}",
            hint="Nothing was changed; db_new.sqlite was removed. Report this with the log.",
        )


@dataclasses.dataclass(frozen=True)
class CopyReport:
    from_schema: int
    to_schema: int
    rows: dict[str, int]  # per table, as copied (before the transforming steps)
    seconds: float
    warnings: tuple[str, ...] = ()
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per phase
    # "pages" (backup API: the schema is the steps' own), "rows", or "file" (recopy.py: a
    # plain file copy of the frozen database)
    method: str = "rows"
    # The PRAGMA the copy ran ("integrity_check", "quick_check"), or None: left to the new
    # server, which runs integrity_check once it serves (recopy.py)
    check: str | None = "integrity_check"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_version_of(conn: sqlite3.Connection, schema: str) -> int:
    exists = conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'schema_steps'"
    ).fetchone()
    if not exists:
        return 0
    return int(conn.execute(f"SELECT max(step) FROM {schema}.schema_steps").fetchone()[0] or 0)


def count_rows(conn: sqlite3.Connection, schema: str, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {schema}.{_q(table)}").fetchone()[0])


def compare_counts(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    """Every table of `conn`'s main database has the rows `counts` says the old one had."""
    for table, expected in counts.items():
        copied = count_rows(conn, "main", table)
        if copied != expected:
            raise CopyFailed(f"{table}: {expected} rows in the old database, {copied} copied")


class Phases(dict[str, float]):
    """Seconds per phase of a copy, in order: each call closes the phase named."""

    def __init__(self) -> None:
        super().__init__()
        self.began = time.monotonic()

    def __call__(self, name: str) -> None:
        self[name] = self.elapsed - sum(self.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.began


def finish_build(
    conn: sqlite3.Connection,
    dst: Path,
    phase: Phases,
    *,
    steps: Sequence[Step],
    app_version: str,
    handover_id: int | None,
    check: str | None,
) -> int:
    """The tail of every copy, on `conn` (`dst`, opened with BUILD_PRAGMAS, holding the old
    data): the remaining steps (the transformation), meta, the handover row DONE, the
    `check` PRAGMA (integrity_check or quick_check) if any, then WAL mode and one fsync.
    Closes `conn`; returns the schema version built."""
    conn.execute("PRAGMA foreign_keys = ON")
    apply_steps(conn, steps=steps, app_version=app_version)
    with transaction(conn):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('app_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (app_version,),
        )
        if handover_id is not None:
            set_stage(conn, handover_id, Stage.DONE, "copied into this database")
    phase("steps")
    if check is not None:
        assert check in ("integrity_check", "quick_check")
        found = [r[0] for r in conn.execute(f"PRAGMA {check}").fetchall()]
        if found != ["ok"]:
            raise CopyFailed(f"{check}: " + "; ".join(found[:5]))
    to_schema = schema_version_of(conn, "main")
    phase("checks")
    conn.close()
    close_checkpointed(connect(dst), dst)  # as the store opens it: in WAL mode
    fsync_file(dst)
    phase("fsync")
    return to_schema


def discard_build(conn: sqlite3.Connection | None, dst: Path, error: BaseException) -> None:
    """A copy failed: close and remove `dst`; a foreign exception is raised as CopyFailed."""
    if conn is not None:
        conn.close()
    remove_database(dst)
    if isinstance(error, Exception) and not isinstance(error, GremlinError):
        raise CopyFailed(f"{type(error).__name__}: {error}") from error


def report_build(
    from_schema: int,
    to_schema: int,
    counts: dict[str, int],
    phase: Phases,
    warnings: Sequence[str],
    method: str,
    check: str | None,
) -> CopyReport:
    for warning in warnings:
        log.warning("copy: %s", warning)
    report = CopyReport(
        from_schema,
        to_schema,
        counts,
        phase.elapsed,
        tuple(warnings),
        dict(phase),
        method,
        check,
    )
    log.info(
        "copied by %s schema=%d->%d rows=%d seconds=%.3f check=%s (%s)",
        method,
        from_schema,
        to_schema,
        sum(counts.values()),
        report.seconds,
        check or "later",
        " ".join(f"{k}={v:.3f}" for k, v in phase.items()),
    )
    return report

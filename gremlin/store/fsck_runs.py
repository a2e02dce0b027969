"""fsck_runs rows (what `gremlin status` and the admin page show) and the background checkpoint.

A run's `report` is JSON: {"mode": "cli"|"background", "repair": bool, "findings": [...],
"repaired": [...], "left": [...], "files_checked", "bytes_checked"}. `findings` (the column)
counts the findings still standing when the run finished: found and not resolved by a repair.
An unfinished row (finished_at NULL) is a run in progress, or one that was cut short.

The background check keeps its place in `meta` under BACKGROUND_KEY, so that it covers every
file over several days of budget and survives restarts and upgrades (meta is copied over).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

BACKGROUND_KEY = "fsck_background"


def start_run(conn: sqlite3.Connection, now: float, report: dict[str, Any]) -> int:
    cur = conn.execute(
        "INSERT INTO fsck_runs (started_at, report) VALUES (?, ?)", (now, json.dumps(report))
    )
    return int(cur.lastrowid or 0)


def update_run(conn: sqlite3.Connection, run_id: int, report: dict[str, Any]) -> None:
    conn.execute("UPDATE fsck_runs SET report = ? WHERE id = ?", (json.dumps(report), run_id))


def finish_run(
    conn: sqlite3.Connection, run_id: int, now: float, findings: int, report: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE fsck_runs SET finished_at = ?, findings = ?, report = ? WHERE id = ?",
        (now, findings, json.dumps(report), run_id),
    )


def run_report(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT report FROM fsck_runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None or row["report"] is None else json.loads(row["report"])


def last_run(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The last finished run: {"id", "started_at", "finished_at", "findings", "report"}."""
    row = conn.execute(
        "SELECT * FROM fsck_runs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return {
        "id": row["id"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "findings": row["findings"],
        "report": json.loads(row["report"] or "{}"),
    }


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Where the background check is: the run it fills, the last file id it verified, and
    how much of today's budget (UTC day) it has spent."""

    run_id: int | None = None
    cursor: int = 0
    day: str = ""
    spent_seconds: float = 0.0
    last_cycle_day: str = ""  # the UTC day the last complete pass started


def load_checkpoint(conn: sqlite3.Connection) -> Checkpoint:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (BACKGROUND_KEY,)).fetchone()
    if row is None:
        return Checkpoint()
    try:
        data = json.loads(row["value"])
        known = {f.name for f in dataclasses.fields(Checkpoint)}
        return Checkpoint(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError):
        return Checkpoint()  # unreadable: start over, which only costs time


def save_checkpoint(conn: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (BACKGROUND_KEY, json.dumps(dataclasses.asdict(checkpoint))),
    )

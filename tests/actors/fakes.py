"""Fakes around the job engine: a media type whose jobs are fake transcoder scripts, rows put
directly into a real site's database, and waiting on outcomes."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from gremlin.media.base import Command, JobView, Kind, PlannedJob
from gremlin.settings import Settings
from gremlin.store import Site, connect
from gremlin.store.jobs import insert_planned_jobs


@dataclasses.dataclass
class FakeType:
    """A media type whose steps run the scripts in `scripts` (step -> script path)."""

    scripts: dict[str, Path]
    follow_ups: dict[str, list[PlannedJob]] = dataclasses.field(default_factory=dict)
    durations: dict[str, float] = dataclasses.field(default_factory=dict)
    python: dict[str, str] = dataclasses.field(default_factory=dict)
    done: list[tuple[str, Mapping[str, Any]]] = dataclasses.field(default_factory=list)
    name: str = "fake"
    kind: Kind = Kind.IMAGE
    mimes: tuple[str, ...] = ("application/x-fake",)

    def sniff(self, head: bytes) -> str | None:
        return None

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        return []

    def command(self, job: JobView, settings: Settings) -> Command:
        if job.step in self.python:
            return Command(python=self.python[job.step], kwargs={"step": job.step})
        script = self.scripts[job.step]
        return Command(
            argv=(sys.executable, str(script), "{input}", "{out}", "{progress}"),
            duration_seconds=self.durations.get(job.step),
        )

    def on_done(
        self, conn: sqlite3.Connection, job: JobView, result: Mapping[str, Any], settings: Settings
    ) -> list[PlannedJob]:
        self.done.append((job.step, dict(result)))
        if "width" in result:
            conn.execute("UPDATE media SET width = ? WHERE id = ?", (result["width"], job.media_id))
        return self.follow_ups.get(job.step, [])


def script(tmp_path: Path, name: str, body: str) -> Path:
    """A fake transcoder: python SCRIPT INPUT OUT PROGRESS, with `body` as its main."""
    path = tmp_path / f"{name}.py"
    head = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "input, out, progress = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])\n"
        f"here = Path({str(tmp_path)!r})\n"
        "def runs(name):\n"
        "    f = here / (name + '.runs')\n"
        "    n = int(f.read_text()) + 1 if f.exists() else 1\n"
        "    f.write_text(str(n))\n"
        "    return n\n"
    )
    path.write_text(head + body)
    return path


def add_media(
    site: Site, steps: list[PlannedJob], *, max_attempts: int = 3, data: bytes = b"raw bytes"
) -> str:
    """A user, a processing media with its original in queue/, and its jobs: one transaction."""
    media_id = "m" + hashlib.sha256(str(time.monotonic_ns()).encode()).hexdigest()[:12]
    (site.queue / f"{media_id}.bin").write_bytes(data)
    conn = connect(site.db)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR IGNORE INTO users (id, name, created_at) VALUES (1, 'ann', ?)", (now,))
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
        " VALUES (?, 1, 'fake', 'processing', ?, ?)",
        (media_id, now, now),
    )
    conn.execute(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
        " VALUES (?, 'original', ?, 'application/x-fake', ?, ?, ?)",
        (media_id, f"queue/{media_id}.bin", len(data), hashlib.sha256(data).hexdigest(), now),
    )
    insert_planned_jobs(conn, media_id, steps, max_attempts=max_attempts)
    conn.execute("COMMIT")
    conn.close()
    return media_id


def rows(site: Site, sql: str, *args: Any) -> list[sqlite3.Row]:
    conn = connect(site.db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def job_rows(site: Site, media_id: str) -> list[sqlite3.Row]:
    return rows(site, "SELECT * FROM jobs WHERE media_id = ? ORDER BY id", media_id)


def media_row(site: Site, media_id: str) -> sqlite3.Row:
    return rows(site, "SELECT * FROM media WHERE id = ?", media_id)[0]


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (the outcome, not a sleep, is the sync)."""
    with trio.move_on_after(timeout):
        while True:
            value = await trio.to_thread.run_sync(check)
            if value:
                return value
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def media_state(site: Site, media_id: str, *states: str) -> Callable[[], bool]:
    return lambda: media_row(site, media_id)["state"] in states

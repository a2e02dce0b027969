"""The job engine across real server crashes: SIGKILL `gremlin serve` while it processes, then
restart it, once as a plain crash and once as a simulated reboot (new boot id, the job
processes killed too). Every imported image ends ready; the reboot charges no attempt."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from gremlin.proc import BOOT_ID_ENV
from gremlin.store import Site, init_site

from ..conftest import ServerProcess, run_gremlin
from ..media.images import image_bytes

pytestmark = pytest.mark.slow


def jobs(site: Site) -> list[sqlite3.Row]:
    conn = sqlite3.connect(site.db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    finally:
        conn.close()


def wait(check, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("reboot", [False, True], ids=["crash", "reboot"])
def test_sigkilled_server_loses_no_job(tmp_path: Path, server_factory, reboot: bool) -> None:
    site = init_site(tmp_path / "site")
    env = {"GREMLIN_JOBS_CONCURRENCY": "1", "GREMLIN_JOBS_NICE": "0"}
    added = run_gremlin("adduser", str(site.root), "ann", "--password-stdin", input="pw123456\n")
    assert added.returncode == 0, added.stderr
    paths = []
    for i in range(3):
        path = tmp_path / f"photo{i}.png"
        path.write_bytes(image_bytes("PNG", (3000, 2000)))
        paths.append(str(path))
    imported = run_gremlin("import", str(site.root), "--user", "ann", *paths, env=env)
    assert imported.returncode == 0, imported.stderr

    server: ServerProcess = server_factory(site.root, env=env)
    running = wait(lambda: [j for j in jobs(site) if j["state"] == "running" and j["pid"]])
    server.stop(signal.SIGKILL)
    if reboot:  # the machine went down: the job processes with it, and a new boot id
        for job in running:
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        env = {**env, BOOT_ID_ENV: "a-boot-after-the-crash"}

    server = server_factory(site.root, env=env)
    wait(lambda: all(j["state"] in ("done", "failed") for j in jobs(site)))
    server.stop()
    final = jobs(site)
    assert [j["state"] for j in final] == ["done"] * 3, [dict(j) for j in final]
    assert all(j["attempt"] == 1 for j in final)  # neither a crash nor a reboot charged one
    listed = json.loads(run_gremlin("jobs", str(site.root), "--json").stdout)
    assert [j["state"] for j in listed] == ["done"] * 3

"""Every failure before the rename aborts cleanly; the old server dying makes the new one
take over as from a stale record."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gremlin.store import Site
from tests.conftest import ServerProcess, run_gremlin
from tests.upgrade import next_version
from tests.upgrade.dbs import dump, fill
from tests.upgrade.procs import UpgradeProcess, handover_rows, wait_health, wait_stage

pytestmark = pytest.mark.slow

SLOW = {"GREMLIN_EXTRA_SCHEMA": "tests.upgrade.next_version:SLOW"}


@pytest.fixture
def filled(tmp_path: Path) -> Site:
    site = Site(tmp_path / "site")
    assert run_gremlin("init", str(site.root)).returncode == 0
    fill(site.db, 10)
    return site


def _can_write(site: Site, name: str) -> bool:
    result = run_gremlin("adduser", str(site.root), name, "--password-stdin",
                         input="a long password\n")  # fmt: skip
    return result.returncode == 0


def test_new_process_killed_mid_copy_old_leaves_maintenance(
    filled: Site, server_factory: type[ServerProcess]
) -> None:
    old = server_factory(filled.root)
    # A first request (the web creates its session secret on the first one: a write).
    wait_health(old.url, lambda h: h["mode"] == "normal")
    before = dump(filled.db)
    new = UpgradeProcess(filled.root, env={**SLOW, "GREMLIN_TEST_SLOW_STEP_SECONDS": "60"})
    wait_stage(filled.db, "copying")
    assert wait_health(old.url, lambda h: h["mode"] == "maintenance")["pid"] == old.proc.pid
    status = run_gremlin("status", str(filled.root), "--json")
    assert json.loads(status.stdout)["server"]["mode"] == "maintenance"
    refused = run_gremlin("adduser", str(filled.root), "eve", "--password-stdin",
                          input="a long password\n")  # fmt: skip
    assert refused.returncode == 1 and "under way" in refused.stderr
    new.proc.kill()
    new.proc.wait()
    killed = time.monotonic()
    wait_health(old.url, lambda h: h["mode"] == "normal", timeout=10)
    assert time.monotonic() - killed < 5
    last = handover_rows(filled.db)[-1]
    assert last["stage"] == "aborted" and "went away" in last["reason"]
    assert not filled.db_new.exists()
    assert dump(filled.db) == before
    assert _can_write(filled, "bob")  # writes are accepted again
    new.close()


def test_failing_transformation_aborts_before_maintenance(
    filled: Site, server_factory: type[ServerProcess]
) -> None:
    """The copy before the window runs the new steps on a snapshot of the live data: a step
    that fails there aborts before the old server is asked for anything."""
    old = server_factory(filled.root)
    before = dump(filled.db)
    env = {"GREMLIN_EXTRA_SCHEMA": "tests.upgrade.next_version:FAILING"}
    result = run_gremlin("upgrade", str(filled.root), env=env)
    assert result.returncode == 1
    assert "Error: copying the data into the new database failed" in result.stderr
    assert "fails on purpose" in result.stderr
    assert "never entered maintenance" in result.stderr
    assert not filled.db_new.exists()
    health = wait_health(old.url, lambda h: h["mode"] == "normal", timeout=10)
    assert health["pid"] == old.proc.pid and health["schema_version"] == 1
    # Recorded as one attempt, aborted at once: the old server never saw a request.
    rows = handover_rows(filled.db)
    assert [r["stage"] for r in rows] == ["aborted"]
    assert rows[0]["reason"].startswith("before maintenance:")
    assert "fails on purpose" in rows[0]["reason"]
    assert "handover id=" not in old.log()  # no request reached it
    assert dump(filled.db) == before
    assert not list(filled.root.glob("db_*.sqlite"))
    assert _can_write(filled, "bob")


def test_failed_copy_in_the_window_removes_db_new_and_the_old_serves_on(
    filled: Site, server_factory: type[ServerProcess]
) -> None:
    old = server_factory(filled.root)
    before = dump(filled.db)
    env = {"GREMLIN_EXTRA_SCHEMA": "tests.upgrade.next_version:FAILING_IN_WINDOW"}
    result = run_gremlin("upgrade", str(filled.root), env=env)
    assert result.returncode == 1
    assert "Error: copying the data into the new database failed" in result.stderr
    assert "fails inside the window on purpose" in result.stderr
    assert not filled.db_new.exists()
    health = wait_health(old.url, lambda h: h["mode"] == "normal", timeout=10)
    assert health["pid"] == old.proc.pid and health["schema_version"] == 1
    last = handover_rows(filled.db)[-1]
    assert last["stage"] == "aborted" and "on purpose" in last["reason"]
    assert "stage=maintenance" in old.log()  # this one did get into the window
    assert dump(filled.db) == before
    assert not list(filled.root.glob("db_*.sqlite"))
    assert _can_write(filled, "bob")


def test_old_server_dying_mid_handover_new_takes_over(
    filled: Site, server_factory: type[ServerProcess]
) -> None:
    old = server_factory(filled.root)
    new = UpgradeProcess(filled.root, env={**SLOW, "GREMLIN_TEST_SLOW_STEP_SECONDS": "3"})
    wait_stage(filled.db, "copying")
    old.stop(signal_kill := 9)
    assert signal_kill == 9
    url = new.wait_serving()
    assert url == old.url  # bound afresh on the old server's address
    health = wait_health(url, lambda h: h["pid"] == new.proc.pid)
    assert health["version"] == next_version.VERSION
    assert (filled.root / "db_0.1.0.sqlite").exists()
    assert len(dump(filled.db)["media"]) == 10
    assert "died mid-handover" in new.log()
    new.stop()

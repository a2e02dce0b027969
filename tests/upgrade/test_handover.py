"""Two real processes hand over under load: the old (this code) and the next version (this
code plus one schema step and a higher version, tests/upgrade/next_version.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from gremlin.store import Site
from tests.conftest import ServerProcess, run_gremlin
from tests.upgrade import next_version
from tests.upgrade.dbs import dump
from tests.upgrade.procs import Load, UpgradeProcess, token_for, wait_health

pytestmark = pytest.mark.slow


def test_handover_under_load_refuses_nothing(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = Site(tmp_path / "site")
    run_gremlin("init", str(site.root))
    token = token_for(site.root)
    old = server_factory(site.root)
    with Load(old.url, token) as load:
        time.sleep(1.5)
        # The window of a small site is shorter than the writer's pace: hold it open 1 s.
        env = {**next_version.ENV, "GREMLIN_TEST_WINDOW_SECONDS": "1"}
        new = UpgradeProcess(site.root, env=env)
        try:
            url = new.wait_serving()
            assert url == old.url  # the same listening socket
            health = wait_health(url, lambda h: h["pid"] == new.proc.pid)
            served_at = time.monotonic()
            assert health["version"] == next_version.VERSION
            assert health["schema_version"] == next_version.NUMBER
            assert old.proc.wait(30) == 0
            time.sleep(1.5)
            # The copy in the window left the full integrity check to the new server.
            deadline = time.monotonic() + 60
            while "integrity_check of the new database: ok" not in new.log():
                assert time.monotonic() < deadline, new.log()[-2000:]
                time.sleep(0.1)
            assert "copied by file" in new.log()  # the window's copy: the frozen file
        finally:
            load.stopping.set()
        load.__exit__()
        assert not [r for r in load.reads if r.status != 200], [
            r for r in load.reads if r.status != 200
        ][:5]
        # At most the keep-alive client's one connection was closed under it, at the handover
        # (then its retry is among the reads above, answered).
        assert len(load.retries) <= 1 and all(
            new.started - 1 <= r.at <= served_at for r in load.retries
        ), load.retries
        pids = {r.pid for r in load.reads}
        assert pids == {old.proc.pid, new.proc.pid}
        statuses = [w.status for w in load.writes]
        assert set(statuses) <= {201, 503}, [w for w in load.writes if w.status not in (201, 503)]
        refused = [w for w in load.writes if w.status == 503]
        assert refused, "the window was never hit by a write"
        assert all(new.started - 1 <= w.at <= served_at for w in refused)
        after = [w for w in load.writes if w.at > served_at]
        assert after and all(w.status == 201 for w in after)
        window = max(w.at for w in refused) - min(w.at for w in refused)
        print(f"reads={len(load.reads)} retries={len(load.retries)} writes={len(statuses)}"
              f" refused={len(refused)}"
              f" window~{window:.2f}s")  # fmt: skip
    # Every acknowledged write is in the new database; the old one is kept, untouched after
    # the copy: its rows are exactly the new one's minus what was written after the handover.
    set_aside = site.root / "db_0.1.0.sqlite"
    assert set_aside.exists()
    kept, now = dump(set_aside), dump(site.db)
    committed = {w.media_id for w in load.writes if w.status == 201}
    assert committed <= {r[0] for r in now["media"]}
    # (states move on as jobs finish: compare what a media is, not how far it got)
    assert [r[:3] for r in now["media"][: len(kept["media"])]] == [r[:3] for r in kept["media"]]
    kept_ids = {r[0] for r in kept["media"]}
    assert committed - kept_ids == {r[0] for r in now["media"][len(kept["media"]) :]}
    assert {w.media_id for w in after} <= committed - kept_ids
    for name in ("users", "tokens"):
        assert now[name] == kept[name]
    with httpx.Client(base_url=new.url, headers={"Authorization": f"Bearer {token}"}) as client:
        for media_id in committed:
            assert client.get(f"/api/v1/media/{media_id}").status_code == 200
    new.stop()

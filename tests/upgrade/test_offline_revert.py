"""No server running: `gremlin upgrade` and `gremlin serve` on an older database copy and
rename; `gremlin revert` puts a set-aside database back, keeping the one it replaces."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gremlin.store import Site
from tests.conftest import ServerProcess, run_gremlin
from tests.upgrade import next_version
from tests.upgrade.dbs import dump, fill
from tests.upgrade.procs import handover_rows, wait_health

pytestmark = pytest.mark.slow


def schema_of(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT max(step) FROM schema_steps").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def filled(tmp_path: Path) -> Site:
    site = Site(tmp_path / "site")
    assert run_gremlin("init", str(site.root)).returncode == 0
    fill(site.db, 10)
    return site


def test_offline_upgrade_then_revert(filled: Site, server_factory: type[ServerProcess]) -> None:
    before = dump(filled.db)
    result = run_gremlin("upgrade", str(filled.root), env=next_version.ENV)
    assert result.returncode == 0, result.stderr
    assert "upgraded offline" in result.stdout and "db_0.1.0.sqlite" in result.stdout
    set_aside = filled.root / "db_0.1.0.sqlite"
    assert schema_of(set_aside) == 1 and dump(set_aside) == before  # kept, untouched
    assert schema_of(filled.db) == next_version.NUMBER
    assert [r[:3] for r in dump(filled.db)["media"]] == [r[:3] for r in before["media"]]
    assert handover_rows(set_aside)[-1]["stage"] == "done"
    assert not filled.db_new.exists()

    fill(filled.db, 3, start=100)  # written by the new version, after the upgrade
    conn = sqlite3.connect(filled.db)  # ... and a row changed, one deleted
    with conn:
        conn.execute("UPDATE media SET title = 'renamed' WHERE id = 'm0000001'")
        conn.execute("DELETE FROM tags WHERE media_id = 'm0000002' AND tag = 'cat'")
    conn.close()
    server = server_factory(filled.root, env=next_version.ENV)
    refused = run_gremlin("revert", str(filled.root))
    assert refused.returncode == 1 and "Stop it first" in refused.stderr
    server.stop()

    reverted = run_gremlin("revert", str(filled.root))
    assert reverted.returncode == 0, reverted.stderr
    assert "db_0.1.0.sqlite" in reverted.stdout
    assert "21 new rows (files 6, jobs 6, media 3, tags 6)" in reverted.stdout
    assert "1 changed rows (media 1); 1 deleted rows are back (tags 1)" in reverted.stdout
    assert schema_of(filled.db) == 1 and dump(filled.db) == before
    replaced = filled.root / f"db_{next_version.VERSION}.sqlite"
    assert schema_of(replaced) == next_version.NUMBER
    assert len(dump(replaced)["media"]) == 13  # nothing lost: the newer rows are kept there
    assert [r[4] for r in dump(replaced)["media"] if r[0] == "m0000001"] == ["renamed"]
    assert handover_rows(replaced)[-1]["stage"] == "done"
    assert not set_aside.exists()

    # Revert by name, back to the newer one (a revert of the revert).
    again = run_gremlin("revert", str(filled.root), f"db_{next_version.VERSION}.sqlite")
    assert again.returncode == 0, again.stderr
    assert len(dump(filled.db)["media"]) == 13 and schema_of(filled.db) == next_version.NUMBER
    assert (filled.root / "db_0.1.0.sqlite").exists()


def test_revert_without_a_set_aside_database_explains(filled: Site) -> None:
    result = run_gremlin("revert", str(filled.root))
    assert result.returncode == 1
    assert "no set-aside database" in result.stderr and "Try: " in result.stderr
    unknown = run_gremlin("revert", str(filled.root), "db_9.sqlite")
    assert unknown.returncode == 1


def test_serve_on_an_older_database_upgrades_it_offline(
    filled: Site, server_factory: type[ServerProcess]
) -> None:
    before = dump(filled.db)
    server = server_factory(filled.root, env=next_version.ENV)
    health = wait_health(server.url, lambda h: h["schema_version"] == next_version.NUMBER)
    assert health["version"] == next_version.VERSION
    assert dump(filled.root / "db_0.1.0.sqlite") == before
    assert "upgraded the database offline" in server.log()
    server.stop()


def test_cli_on_an_older_database_says_upgrade(filled: Site) -> None:
    result = run_gremlin("status", str(filled.root), env=next_version.ENV)
    assert result.returncode == 1
    assert "gremlin upgrade" in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_revert_replaces_a_damaged_database_and_keeps_it(
    filled: Site, server_factory: type[ServerProcess], damage: str
) -> None:
    """What the 'is damaged' error advises: revert puts the set-aside database back although
    db.sqlite cannot be read (it refused before), keeping the damaged file's bytes beside it."""
    assert run_gremlin("upgrade", str(filled.root), env=next_version.ENV).returncode == 0
    before = dump(filled.root / "db_0.1.0.sqlite")
    with filled.db.open("r+b") as f:
        if damage == "truncated":
            f.truncate(filled.db.stat().st_size // 2)
        else:
            f.seek(4096 * 2)
            f.write(b"\x55" * 8192)
    broken = filled.db.read_bytes()
    status = run_gremlin("status", str(filled.root), env=next_version.ENV)
    assert status.returncode == 1 and "is damaged" in status.stderr
    assert "gremlin revert" in status.stderr

    reverted = run_gremlin("revert", str(filled.root))
    assert reverted.returncode == 0, reverted.stderr
    assert "Traceback" not in reverted.stderr and "could not be read (damaged)" in reverted.stdout
    assert dump(filled.db) == before
    (kept,) = filled.root.glob("db.sqlite.damaged-*")
    assert kept.read_bytes() == broken
    assert not (filled.root / "db_0.1.0.sqlite").exists()  # it is db.sqlite now
    assert run_gremlin("status", str(filled.root)).returncode == 0
    server = server_factory(filled.root)
    assert server.stop() == 0
    assert list(filled.root.glob("db.sqlite.damaged-*")) == [kept]  # never a revert candidate

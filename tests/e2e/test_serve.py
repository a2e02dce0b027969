"""`gremlin serve` as a real process: /healthz, the database as pidfile, signals."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, run_gremlin

pytestmark = pytest.mark.slow


def server_row(site: Path) -> sqlite3.Row | None:
    conn = sqlite3.connect(site / "db.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM server").fetchone()
    finally:
        conn.close()


def test_serve_creates_the_site_and_answers_healthz(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "new-site"
    server = server_factory(site)
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    assert health["mode"] == "normal"
    assert health["pid"] == server.proc.pid
    assert health["schema_version"] >= 1
    assert health["version"]
    for name in ("incoming", "queue", "originals", "media", "jobs", "quarantine"):
        assert (site / "content" / name).is_dir()
    row = server_row(site)
    assert row is not None and row["pid"] == server.proc.pid and row["bind"] == server.url
    assert server.stop() == 0
    assert server_row(site) is None  # a clean exit clears the record


def test_second_serve_is_refused_naming_the_pid(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "site"
    first = server_factory(site)
    second = run_gremlin("serve", str(site), "--bind", "127.0.0.1:0", timeout=30)
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1
    assert f"pid {first.proc.pid}" in errors[0]
    assert "since" in errors[0]
    assert second.stderr.splitlines()[-1].startswith("Try: ")
    assert "Traceback" not in second.stderr
    assert httpx.get(f"{first.url}/healthz").status_code == 200  # the first is untouched


def test_killed_server_record_is_taken_over(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "site"
    first = server_factory(site)
    first.stop(signal.SIGKILL)
    assert server_row(site)["pid"] == first.proc.pid  # the stale record is still there
    third = server_factory(site)
    assert httpx.get(f"{third.url}/healthz").json()["pid"] == third.proc.pid
    assert "taking over stale server record" in third.log()
    assert server_row(site)["pid"] == third.proc.pid


def test_stale_record_with_reused_pid_is_taken_over(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    """A record whose pid is now an unrelated live process (start time differs) is stale."""
    site = tmp_path / "site"
    run_gremlin("init", str(site))
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        conn = sqlite3.connect(site / "db.sqlite")
        conn.execute(
            "INSERT INTO server (id, pid, pid_start, boot_id, version, started_at)"
            " VALUES (1, ?, 1, ?, '0.0.1', 0)",
            (unrelated.pid, Path("/proc/sys/kernel/random/boot_id").read_text().strip()),
        )
        conn.commit()
        conn.close()
        server = server_factory(site)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        unrelated.kill()
        unrelated.wait()


def test_record_from_another_boot_is_taken_over(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "site"
    first = server_factory(site, env={"GREMLIN_FAKE_BOOT_ID": "boot-a"})
    first.stop(signal.SIGKILL)
    second = server_factory(site, env={"GREMLIN_FAKE_BOOT_ID": "boot-b"})
    assert httpx.get(f"{second.url}/healthz").status_code == 200


def test_sigterm_drains_within_its_bound(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    site = tmp_path / "site"
    (tmp_path / "site").mkdir()
    (site / "gremlin.toml").write_text("shutdown_grace_seconds = 2\n")
    server = server_factory(site)
    # A keep-alive connection that is idle must not hold the shutdown past the bound.
    client = httpx.Client()
    assert client.get(f"{server.url}/healthz").status_code == 200
    began = time.monotonic()
    rc = server.stop(signal.SIGTERM)
    elapsed = time.monotonic() - began
    client.close()
    assert rc == 0
    assert elapsed < 2 + 5
    assert "stopping gracefully" in server.log()
    with pytest.raises(httpx.ConnectError):  # no longer listening
        httpx.get(f"{server.url}/healthz")


def test_second_signal_exits_now(tmp_path: Path, server_factory: type[ServerProcess]) -> None:
    site = tmp_path / "site"
    server = server_factory(site)
    server.proc.send_signal(signal.SIGINT)
    server.proc.send_signal(signal.SIGINT)
    rc = server.proc.wait(15)
    assert rc in (0, 1)


def test_init_refuses_a_foreign_database(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    conn = sqlite3.connect(site / "db.sqlite")
    conn.execute("CREATE TABLE photos (x)")
    conn.commit()
    conn.close()
    result = run_gremlin("init", str(site))
    assert result.returncode == 1
    assert "did not create" in result.stderr
    result = run_gremlin("serve", str(site), "--bind", "127.0.0.1:0")
    assert result.returncode == 1


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert run_gremlin("serve", str(tmp_path), "--no-such-flag").returncode == 2


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run_gremlin("serve", str(tmp_path), "--bind", "nonsense")
    assert result.returncode == 1
    assert any(
        line.startswith("Error: setting bind='nonsense'") for line in result.stderr.splitlines()
    )
    assert "Traceback" not in result.stderr


def test_default_site_is_gremlin_site_env(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    result = run_gremlin("init", env={"GREMLIN_SITE": str(tmp_path / "envsite")})
    assert result.returncode == 0
    assert (tmp_path / "envsite" / "db.sqlite").exists()
    assert os.path.isdir(tmp_path / "envsite" / "content" / "queue")


def test_second_serve_on_the_same_port_names_the_server(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    """The live server is named before its port is tried (no 'address in use' traceback)."""
    site = tmp_path / "site"
    first = server_factory(site)
    bind = first.url.removeprefix("http://")
    second = run_gremlin("serve", str(site), "--bind", bind, timeout=30)
    assert second.returncode == 1
    assert f"pid {first.proc.pid}" in second.stderr
    assert "Traceback" not in second.stderr


def test_port_taken_by_another_program_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_gremlin("serve", str(tmp_path / "site"), "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Try: " in result.stderr
    assert "Traceback" not in result.stderr

"""While a handover (or an offline upgrade, or a revert) is under way, every CLI writer refuses
with a clear message; a handover row whose process is gone holds nothing up."""

from __future__ import annotations

import subprocess

from gremlin.proc import ProcessId
from gremlin.store import Site, connect, transaction
from gremlin.store.handover import Stage, request_handover, set_stage
from tests.conftest import run_gremlin


def _request(site: Site, new: ProcessId) -> int:
    conn = connect(site.db)
    try:
        with transaction(conn):
            return request_handover(conn, new, "9.9")
    finally:
        conn.close()


def test_cli_writers_refuse_while_a_handover_is_under_way(site: Site) -> None:
    hid = _request(site, ProcessId.current())  # this test process plays the new version
    for args in (("adduser", str(site.root), "bob", "--password-stdin"),):
        result = run_gremlin(*args, input="a long password\n")
        assert result.returncode == 1
        assert "upgrade to version 9.9 is under way" in result.stderr
        assert "Try: " in result.stderr
    serve = run_gremlin("serve", str(site.root), "--bind", "127.0.0.1:0")
    assert serve.returncode == 1 and "under way" in serve.stderr
    conn = connect(site.db)
    with transaction(conn):
        set_stage(conn, hid, Stage.ABORTED, "test")
    conn.close()
    assert run_gremlin("adduser", str(site.root), "bob", "--password-stdin",
                       input="a long password\n").returncode == 0  # fmt: skip


def test_a_dead_request_holds_nothing_up(site: Site) -> None:
    gone = subprocess.Popen(["true"])
    dead = ProcessId.of(gone.pid)
    gone.wait()
    assert dead is not None and not dead.alive()
    _request(site, dead)
    result = run_gremlin("adduser", str(site.root), "bob", "--password-stdin",
                         input="a long password\n")  # fmt: skip
    assert result.returncode == 0, result.stderr

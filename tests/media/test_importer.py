"""The import's pieces: which files a path means, and no imports while a server hands over."""

from __future__ import annotations

from pathlib import Path

import pytest

from gremlin.errors import Maintenance
from gremlin.media.importer import copy_to_incoming, expand, refuse_in_maintenance
from gremlin.proc import ProcessId
from gremlin.store import Site, connect, sha256_file, transaction
from gremlin.store.server_record import claim_server, set_mode

from .images import write


def test_expand_recurses_in_name_order_skipping_hidden_entries(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.jpg", "sub/c.png", ".hidden.jpg", ".git/x.jpg", "sub/.DS_Store"):
        write(tmp_path / "dir" / name, b"x")
    single = write(tmp_path / ".explicit.jpg", b"x")
    found = list(expand([str(tmp_path / "dir"), str(single), str(tmp_path / "nope")]))
    names = [(Path(shown).relative_to(tmp_path).as_posix(), why) for shown, _, why in found]
    assert names == [
        ("dir/a.jpg", ""),
        ("dir/b.jpg", ""),
        ("dir/sub/c.png", ""),
        (".explicit.jpg", ""),  # named on the command line: taken
        ("nope", "no such file"),
    ]


def test_copy_to_incoming_hashes_while_copying(site: Site, tmp_path: Path) -> None:
    source = write(tmp_path / "src.bin", b"abc" * 100_000)
    staged, size, digest = copy_to_incoming(source, site.incoming)
    assert staged.parent == site.incoming and staged.read_bytes() == source.read_bytes()
    assert (size, digest) == sha256_file(source)


def test_imports_are_refused_while_a_live_server_is_in_maintenance(site: Site) -> None:
    conn = connect(site.db)
    try:
        me = ProcessId.current()
        with transaction(conn):
            claim_server(conn, me, "test", "127.0.0.1:1", None)
        with transaction(conn):
            refuse_in_maintenance(conn)  # normal mode: fine
        with transaction(conn):
            set_mode(conn, me, "maintenance")
        with pytest.raises(Maintenance, match="maintenance"), transaction(conn):
            refuse_in_maintenance(conn)
    finally:
        conn.close()

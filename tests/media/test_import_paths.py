"""`gremlin import`: odd paths print on one line; symbolic links inside directories are not
followed (no loops, nothing from outside), links named on the command line are."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gremlin.media.importer import LINK_INSIDE, expand, shown_path
from gremlin.store import Site

from ..conftest import run_gremlin
from .images import camera_jpeg, write
from .test_import_cli import alice, db_rows  # noqa: F401  (alice is a fixture)


def test_shown_path_is_one_unambiguous_line() -> None:
    assert shown_path("dir/a b.jpg") == "dir/a b.jpg"
    assert shown_path("line1\nline2.jpg") == "line1\\nline2.jpg"
    assert shown_path("a\\nb") == "a\\\\nb"  # a real backslash is not a newline
    assert shown_path("\x1b[31mred\r\t") == "\\x1b[31mred\\r\\t"
    assert shown_path("\u202egpj.jpg") == "\\u202egpj.jpg"
    assert shown_path(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert shown_path("café.jpg") == "café.jpg"


def test_links_inside_directories_are_refused_and_never_loop(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    real = write(tree / "a.jpg", b"x")
    outside = write(tmp_path / "outside" / "secret.jpg", b"x")
    (tree / "b-link.jpg").symlink_to(real)
    (tree / "c-out.jpg").symlink_to(outside)
    (tree / "d-loop").symlink_to(tree)  # a loop if followed
    (tree / "e-dir").symlink_to(outside.parent)
    os.mkfifo(tree / "f-fifo")
    explicit = tmp_path / "explicit.jpg"
    explicit.symlink_to(outside)
    linked_dir = tmp_path / "linked-dir"
    linked_dir.symlink_to(outside.parent)

    found = list(expand([str(tree), str(explicit), str(linked_dir)]))
    got = [(Path(shown).relative_to(tmp_path).as_posix(), why) for shown, _, why in found]
    assert got == [
        ("tree/a.jpg", ""),
        ("tree/b-link.jpg", LINK_INSIDE),
        ("tree/c-out.jpg", LINK_INSIDE),
        ("tree/d-loop", LINK_INSIDE),
        ("tree/e-dir", LINK_INSIDE),
        ("tree/f-fifo", "not a regular file"),
        ("explicit.jpg", ""),  # named on the command line: followed
        ("linked-dir/secret.jpg", ""),
    ]


def test_import_prints_a_newline_path_on_one_line(
    site: Site,
    alice: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    odd = write(tmp_path / "in" / "line1\nline2 \\n.jpg", camera_jpeg())
    done = run_gremlin("import", str(site.root), "--user", alice, str(tmp_path / "in"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    media_id, printed = lines[0].split(" ", 1)
    assert printed == str(odd.parent) + "/line1\\nline2 \\\\n.jpg"
    assert [r["id"] for r in db_rows(site, "SELECT id FROM media")] == [media_id]

    again = run_gremlin("import", str(site.root), "--user", alice, "--json", str(odd))
    assert again.returncode == 0, again.stderr
    assert [item["path"] for item in json.loads(again.stdout)] == [str(odd)]

"""Hostile file names under content/: bytes that are not UTF-8, control characters, newlines,
terminal escapes. fsck finds and repairs them like any other, the GC cleans stale uploads with
such names, and the text report prints them escaped, one finding per line."""

from __future__ import annotations

import os

import pytest

from gremlin.actors.fsck import Report, run_fsck
from gremlin.actors.gc import run_gc
from gremlin.commands.fsck import _print_text
from gremlin.settings import Settings, load
from gremlin.store import Site, open_store
from gremlin.store.fsck import Finding, Kind, printable

from .fsck_site import HOUR, populate

BAD = b"bad\xff\x1b[31mred\nline.webp"  # not UTF-8, an escape sequence, a newline


@pytest.fixture
def cfg(site: Site) -> Settings:
    return load(site.root, {"fsck_orphan_grace_seconds": 0}, environ={})


async def fsck(site: Site, cfg: Settings, *, repair: bool = False) -> Report:
    async with open_store(site.db) as store:
        return await run_fsck(store, site, cfg, repair=repair)


def put(site: Site, rel: bytes, data: bytes, age: float = 0.0) -> bytes:
    path = os.fsencode(site.content) + b"/" + rel
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if age:
        os.utime(path, (os.path.getmtime(path) - age,) * 2)
    return path


def read(path: bytes) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def test_undecodable_names_are_found_and_repaired(site: Site, cfg: Settings) -> None:
    populate(site)
    put(site, b"media/m1/" + BAD, b"orphan")
    put(site, b"incoming/\xfeup.bin", b"partial", age=48 * HOUR)
    put(site, b"incoming/\xfeup.json", b"{}", age=48 * HOUR)
    put(site, b"jobs/\xfdjob/log", b"scratch")
    report = await fsck(site, cfg)
    assert sorted(f.kind.value for f in report.findings) == [
        "orphan",
        "stale_upload",
        "stray_job_dir",
    ]
    repaired = await fsck(site, cfg, repair=True)
    assert repaired.remaining == 0
    assert sorted(o["action"] for o in repaired.to_json()["repaired"]) == [
        "quarantined",
        "removed",
        "removed",
    ]
    assert os.listdir(os.fsencode(site.incoming)) == []
    assert b"\xfdjob" not in os.listdir(os.fsencode(site.jobs))
    (run_dir,) = os.listdir(os.fsencode(site.quarantine))
    moved = os.fsencode(site.quarantine) + b"/" + run_dir + b"/media/m1/" + BAD
    assert read(moved) == b"orphan"
    assert (await fsck(site, cfg)).findings == []


async def test_gc_removes_a_stale_upload_with_an_undecodable_name(
    site: Site, cfg: Settings
) -> None:
    populate(site)
    put(site, b"incoming/\xfeup.bin", b"partial", age=48 * HOUR)
    put(site, b"incoming/\xfeup.json", b"{}", age=48 * HOUR)
    put(site, b"incoming/fresh.bin", b"partial")
    async with open_store(site.db) as store:
        report = await run_gc(store, site, cfg)
    assert len(report.uploads_removed) == 2
    assert os.listdir(site.incoming) == ["fresh.bin"]


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    name = os.fsdecode(BAD)
    assert printable(name) == "bad\\xff\\x1b[31mred\\nline.webp"
    assert printable("ünïcødé 写真 a b.jpg") == "ünïcødé 写真 a b.jpg"
    assert printable("rtl\u202eexe.jpg") == "rtl\\u202eexe.jpg"


def test_the_text_report_keeps_one_line_per_finding(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    name = os.fsdecode(b"media/" + BAD)
    finding = Finding(Kind.ORPHAN, name, detail="a file of 6 bytes that no row refers to")
    report = Report(run_id=1, mode="cli", repair=False, label="run1", findings=[finding])
    _print_text(report, site)
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("orphan")]
    assert "media/bad\\xff\\x1b[31mred\\nline.webp" in line
    assert "\x1b" not in out

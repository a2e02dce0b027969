"""fsck on a real site: each kind of damage -> the right finding and the right repair; repair
twice = repair once; a commit racing the scan is never quarantined; nothing outside quarantine/
is removed except stale partial uploads and job scratch."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from gremlin.actors.fsck import Report, run_fsck
from gremlin.proc import ProcessId
from gremlin.settings import Settings, load
from gremlin.store import COMMITTING, Site, open_store
from gremlin.store.fsck import Kind
from gremlin.store.fsck_runs import last_run
from gremlin.store.queries import status_counts

from .fsck_site import HOUR, add_file_row, db, make_old, one, populate, put_file, snapshot


@pytest.fixture
def cfg(site: Site) -> Settings:
    return load(site.root, {"fsck_orphan_grace_seconds": 0}, environ={})


async def fsck(site: Site, cfg: Settings, *, repair: bool = False, **kw: Any) -> Report:
    async with open_store(site.db) as store:
        return await run_fsck(store, site, cfg, repair=repair, **kw)


def kinds(report: Report) -> list[tuple[str, str, str | None]]:
    return sorted((f.kind.value, f.path, f.media_id) for f in report.findings)


def actions(report: Report) -> list[tuple[str, str]]:
    return sorted((o["action"], o["path"]) for o in report.to_json()["repaired"])


async def repair_twice(site: Site, cfg: Settings) -> tuple[Report, Report]:
    """Repair, then repair again: the second run must change nothing at all."""
    first = await fsck(site, cfg, repair=True)
    tree = snapshot(site)
    rows = _rows(site)
    second = await fsck(site, cfg, repair=True)
    assert second.to_json()["repaired"] == []
    assert snapshot(site) == tree
    assert _rows(site) == rows
    return first, second


def _rows(site: Site) -> list[tuple[Any, ...]]:
    conn = db(site)
    try:
        out = [tuple(r) for r in conn.execute("SELECT id, path, size, sha256 FROM files")]
        out += [tuple(r) for r in conn.execute("SELECT id, state, attempt FROM jobs")]
        out += [tuple(r) for r in conn.execute("SELECT id, state, damaged FROM media")]
        return sorted(out, key=repr)
    finally:
        conn.close()


async def test_clean_site_has_no_findings_and_records_the_run(site: Site, cfg: Settings) -> None:
    populate(site)
    report = await fsck(site, cfg)
    assert report.findings == []
    assert report.files_checked == 4
    conn = db(site)
    assert last_run(conn)["findings"] == 0  # type: ignore[index]
    assert status_counts(conn)["fsck"]["findings"] == 0
    verified = one(conn, "SELECT count(*) FROM files WHERE verified_at IS NOT NULL")
    assert verified[0] == 4  # type: ignore[index]


async def test_deleted_derived_file_is_found_and_its_job_requeued(
    site: Site, cfg: Settings
) -> None:
    jobs = populate(site)
    (site.content / "media/m1/thumb.webp").unlink()
    report = await fsck(site, cfg)
    assert kinds(report) == [("missing", "media/m1/thumb.webp", "m1")]
    assert report.remaining == 1

    first, second = await repair_twice(site, cfg)
    assert actions(first) == [("requeued", "media/m1/thumb.webp")]
    assert first.remaining == 0 and second.findings == []
    conn = db(site)
    job = one(conn, "SELECT state, attempt, reason FROM jobs WHERE id = ?", jobs["m1"])
    assert tuple(job) == ("queued", 0, None)  # type: ignore[arg-type]
    assert one(conn, "SELECT state FROM media WHERE id = 'm1'")[0] == "processing"  # type: ignore[index]
    assert one(conn, "SELECT 1 FROM files WHERE path = 'media/m1/thumb.webp'") is None
    # the other output of that job, and the original, are untouched
    assert (site.content / "media/m1/medium.webp").exists()


async def test_truncated_derived_file_is_quarantined_and_remade(site: Site, cfg: Settings) -> None:
    jobs = populate(site)
    medium = site.content / "media/m1/medium.webp"
    os.truncate(medium, 100)
    damaged = medium.read_bytes()
    report = await fsck(site, cfg)
    assert kinds(report) == [("mismatch", "media/m1/medium.webp", "m1")]
    assert "bytes" in report.findings[0].detail

    first, _ = await repair_twice(site, cfg)
    assert actions(first) == [("requeued", "media/m1/medium.webp")]
    assert not medium.exists()
    (quarantined,) = list(site.quarantine.glob("*/media/m1/medium.webp"))
    assert quarantined.read_bytes() == damaged
    assert one(db(site), "SELECT state FROM jobs WHERE id = ?", jobs["m1"])[0] == "queued"  # type: ignore[index]


async def test_a_commits_mark_in_queue_is_not_an_orphan(site: Site, cfg: Settings) -> None:
    """queue/<id>/.committing is a commit's bookkeeping (the GC sweeps it), not a stored file:
    a commit killed between its COMMIT and removing the mark left an 'orphan' before."""
    populate(site)
    (mark := site.queue / "m2" / COMMITTING).touch()
    report = await fsck(site, cfg, repair=True)
    assert report.findings == [] and mark.exists()


async def test_a_directory_in_place_of_a_derived_file_is_quarantined_and_remade(
    site: Site, cfg: Settings
) -> None:
    """It used to be left as "the file is back: run fsck again", run after run."""
    jobs = populate(site)
    thumb = site.content / "media/m1/thumb.webp"
    thumb.unlink()
    thumb.mkdir()
    report = await fsck(site, cfg)
    assert kinds(report) == [("missing", "media/m1/thumb.webp", "m1")]

    first, second = await repair_twice(site, cfg)
    assert actions(first) == [("requeued", "media/m1/thumb.webp")]
    assert first.remaining == 0 and second.findings == []
    assert not thumb.exists()
    (kept,) = list(site.quarantine.glob("*/media/m1/thumb.webp"))
    assert kept.is_dir()
    assert one(db(site), "SELECT state FROM jobs WHERE id = ?", jobs["m1"])[0] == "queued"  # type: ignore[index]


async def test_flipped_byte_in_an_original_flags_the_media_and_never_moves_it(
    site: Site, cfg: Settings
) -> None:
    populate(site)
    original = site.content / "originals/m1/original.jpg"
    data = bytearray(original.read_bytes())
    data[12345] ^= 0x01
    original.write_bytes(bytes(data))
    report = await fsck(site, cfg)
    assert kinds(report) == [("mismatch", "originals/m1/original.jpg", "m1")]
    assert "SHA-256" in report.findings[0].detail

    first, second = await repair_twice(site, cfg)
    assert actions(first) == [("flagged_damaged", "originals/m1/original.jpg")]
    assert first.remaining == 1 and second.remaining == 1  # it stays a finding: restore it
    assert original.read_bytes() == bytes(data)  # never deleted, never replaced
    damaged = one(db(site), "SELECT damaged, state FROM media WHERE id = 'm1'")
    assert "original mismatch" in damaged["damaged"]  # type: ignore[index]
    assert damaged["state"] == "ready"  # type: ignore[index]
    assert not any(site.quarantine.rglob("*.jpg"))

    # the admin restores the original from a backup: the next repair clears the flag, once
    data[12345] ^= 0x01
    original.write_bytes(bytes(data))
    restored, after = await repair_twice(site, cfg)
    assert restored.findings == [] and after.cleared == []
    assert [c["media_id"] for c in restored.cleared] == ["m1"]
    assert one(db(site), "SELECT damaged FROM media WHERE id = 'm1'")[0] is None  # type: ignore[index]


async def test_deleted_original_in_queue_flags_the_media(site: Site, cfg: Settings) -> None:
    populate(site)
    (site.content / "queue/m2/original.png").unlink()
    report = await fsck(site, cfg)
    assert kinds(report) == [("missing", "queue/m2/original.png", "m2")]
    first, _ = await repair_twice(site, cfg)
    assert actions(first) == [("flagged_damaged", "queue/m2/original.png")]
    assert "original missing" in one(db(site), "SELECT damaged FROM media WHERE id = 'm2'")[0]  # type: ignore[index]


async def test_stray_files_are_orphans_and_go_to_quarantine(site: Site, cfg: Settings) -> None:
    populate(site)
    put_file(site, "media/m1/extra.bin", b"stray")
    put_file(site, "loose.txt", b"at the top of content/")
    put_file(site, "originals/nobody/original.jpg", b"no row")
    put_file(site, "quarantine/old/kept.bin", b"quarantine is never scanned")
    report = await fsck(site, cfg)
    assert kinds(report) == [
        ("orphan", "loose.txt", None),
        ("orphan", "media/m1/extra.bin", None),
        ("orphan", "originals/nobody/original.jpg", None),
    ]
    first, second = await repair_twice(site, cfg)
    assert second.findings == []
    assert [a for a, _ in actions(first)] == ["quarantined"] * 3
    (run_dir,) = [p for p in site.quarantine.iterdir() if p.name != "old"]
    assert (run_dir / "media/m1/extra.bin").read_bytes() == b"stray"
    assert (run_dir / "loose.txt").exists()
    assert (run_dir / "originals/nobody/original.jpg").read_bytes() == b"no row"
    assert (site.quarantine / "old/kept.bin").exists()


async def test_old_partial_upload_is_stale_and_removed_a_fresh_one_kept(
    site: Site, cfg: Settings
) -> None:
    populate(site)
    for name in ("old1.bin", "old1.json", "new1.bin", "new1.json"):
        put_file(site, f"incoming/{name}", b"partial")
    for name in ("old1.bin", "old1.json"):
        make_old(site.incoming / name, 25 * HOUR)
    report = await fsck(site, cfg)
    assert kinds(report) == [("stale_upload", "incoming/old1.bin", None)]
    first, _ = await repair_twice(site, cfg)
    assert actions(first) == [("removed", "incoming/old1.bin")]
    assert sorted(p.name for p in site.incoming.iterdir()) == ["new1.bin", "new1.json"]


async def test_stray_job_dir_removed_unless_a_live_process_is_recorded(
    site: Site, cfg: Settings
) -> None:
    jobs = populate(site)
    put_file(site, "jobs/999/log", b"an old log")
    me = ProcessId.current()
    put_file(
        site,
        "jobs/998/pid",
        json.dumps({"pid": me.pid, "start": me.start, "boot": me.boot}).encode(),
    )
    put_file(site, f"jobs/{jobs['m1']}/log", b"a real job's scratch")
    put_file(site, "jobs/997/pid", json.dumps({"pid": 0, "abandoned_at": 1}).encode())
    report = await fsck(site, cfg)
    assert kinds(report) == [
        ("stray_job_dir", "jobs/997", None),
        ("stray_job_dir", "jobs/998", None),
        ("stray_job_dir", "jobs/999", None),
    ]
    first, second = await repair_twice(site, cfg)
    assert actions(first) == [("removed", "jobs/997"), ("removed", "jobs/999")]
    assert [f.path for f in second.findings] == ["jobs/998"]
    assert "alive" in second.to_json()["left"][0]["detail"]
    assert sorted(p.name for p in site.jobs.iterdir()) == sorted(["998", str(jobs["m1"])])


async def test_every_damage_at_once_removes_nothing_outside_quarantine(
    site: Site, cfg: Settings
) -> None:
    """Snapshot the tree; make every kind of damage; repair. Every file that was there is
    still there unchanged, or in quarantine/ with the same bytes, or was a stale partial
    upload or job scratch."""
    populate(site)
    (site.content / "media/m1/thumb.webp").unlink()
    os.truncate(site.content / "media/m1/medium.webp", 10)
    put_file(site, "media/m1/stray.bin", b"stray")
    put_file(site, "incoming/gone.bin", b"partial")
    make_old(site.incoming / "gone.bin", 48 * HOUR)
    put_file(site, "jobs/4242/out/x", b"scratch")
    before = snapshot(site)
    report = await fsck(site, cfg, repair=True)
    assert {f.kind for f in report.findings} == set(Kind)
    after = snapshot(site)
    quarantined = {sha for rel, sha in after.items() if rel.startswith("quarantine/")}
    for rel, sha in before.items():
        if rel in after:
            assert after[rel] == sha, rel
        elif rel.startswith(("incoming/", "jobs/")):
            continue  # a stale partial upload, job scratch: the only removals allowed
        else:
            assert sha in quarantined, f"{rel} vanished"
    assert (await fsck(site, cfg)).findings == []


async def test_a_commit_during_the_scan_is_never_quarantined(site: Site, cfg: Settings) -> None:
    """The file is written to its final place before fsck starts; its row commits while fsck
    is hashing (from another connection, as an upload would). Repair must leave it alone."""
    populate(site)
    data = os.urandom(50_000)
    put_file(site, "queue/m3/original.jpg", data)
    committed = []

    class CommitDuringScan:
        def start(self, files: int, total_bytes: int) -> None:
            pass

        def advance(self, nbytes: int) -> None:  # a worker thread, mid-hash
            if not committed:
                conn = db(site)
                conn.execute("BEGIN IMMEDIATE")
                now = time.time()
                conn.execute(
                    "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
                    " VALUES ('m3', 1, 'image', 'processing', ?, ?)",
                    (now, now),
                )
                add_file_row(conn, site, "m3", "original", "queue/m3/original.jpg", data)
                conn.execute("COMMIT")
                conn.close()
                committed.append(True)

        def finish(self) -> None:
            pass

    report = await fsck(site, cfg, repair=True, progress=CommitDuringScan())
    assert committed
    assert kinds(report) == [("orphan", "queue/m3/original.jpg", None)]  # seen before the row
    assert report.to_json()["repaired"] == []
    assert report.remaining == 0  # resolved: a row refers to it now
    assert (site.content / "queue/m3/original.jpg").read_bytes() == data
    assert not any(p.is_file() for p in site.quarantine.rglob("*"))


async def test_commits_racing_repeated_repairs_are_never_quarantined(site: Site) -> None:
    """Uploads keep landing (file first, row up to 0.2 s later) while fsck --repair runs again
    and again: no committed file ever ends up away from its row. (With a grace of 0 this test
    fails: the re-check inside the transaction alone cannot see a commit still to come.)"""
    cfg = load(site.root, {"fsck_orphan_grace_seconds": 1.0}, environ={})
    populate(site)
    rng = random.Random(7)
    paths: list[str] = []

    async def uploads() -> None:
        conn = db(site)
        try:
            for i in range(30):
                rel = f"queue/r{i}/original.jpg"
                data = os.urandom(2000)
                put_file(site, rel, data)
                await trio.sleep(rng.uniform(0, 0.2))  # the commit window
                conn.execute("BEGIN IMMEDIATE")
                now = time.time()
                conn.execute(
                    "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
                    " VALUES (?, 1, 'image', 'processing', ?, ?)",
                    (f"r{i}", now, now),
                )
                add_file_row(conn, site, f"r{i}", "original", rel, data)
                conn.execute("COMMIT")
                paths.append(rel)
        finally:
            conn.close()

    async with open_store(site.db) as store, trio.open_nursery() as nursery:
        nursery.start_soon(uploads)
        runs = 0
        while len(paths) < 30 or runs < 2:
            await run_fsck(store, site, cfg, repair=True)
            runs += 1
    assert len(paths) == 30
    for rel in paths:
        assert (site.content / rel).is_file(), f"{rel} was moved away from its row"
    assert not any(p.is_file() for p in site.quarantine.rglob("*"))


@pytest.mark.slow
def test_the_cli_reports_json_repairs_and_exits_3_while_findings_remain(site: Site) -> None:
    from tests.conftest import run_gremlin

    populate(site)
    (site.content / "media/m1/thumb.webp").unlink()
    put_file(site, "media/m1/stray.bin", b"stray")
    env = {"GREMLIN_FSCK_ORPHAN_GRACE_SECONDS": "0"}
    checked = run_gremlin("fsck", str(site.root), "--json", env=env)
    assert checked.returncode == 3, checked.stderr
    found = json.loads(checked.stdout)
    assert sorted((f["kind"], f["path"], f["media_id"]) for f in found["findings"]) == [
        ("missing", "media/m1/thumb.webp", "m1"),
        ("orphan", "media/m1/stray.bin", None),
    ]
    assert found["repaired"] == []

    repaired = run_gremlin("fsck", str(site.root), "--json", "--repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    done = json.loads(repaired.stdout)["repaired"]
    assert sorted((r["action"], r["path"]) for r in done) == [
        ("quarantined", "media/m1/stray.bin"),
        ("requeued", "media/m1/thumb.webp"),
    ]
    again = run_gremlin("fsck", str(site.root), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "clean" in again.stdout
    status = json.loads(run_gremlin("status", str(site.root), "--json").stdout)
    assert status["fsck"]["findings"] == 0


@pytest.mark.slow
def test_the_cli_text_report_names_each_finding(site: Site, tmp_path: Path) -> None:
    from tests.conftest import run_gremlin

    populate(site)
    os.truncate(site.content / "originals/m1/original.jpg", 5)
    out = run_gremlin("fsck", str(site.root), "--repair")
    assert out.returncode == 3
    assert "mismatch" in out.stdout and "originals/m1/original.jpg" in out.stdout
    assert "flagged_damaged" in out.stdout
    assert "1 finding(s) remain" in out.stdout
    missing = run_gremlin("fsck", str(tmp_path / "nosite"))
    assert missing.returncode == 1 and missing.stderr.startswith("Error:")


async def test_an_original_whose_move_to_originals_was_cut_short_is_settled(
    site: Site, cfg: Settings
) -> None:
    """A crash between the rename queue/ -> originals/ and the row's update: the report shows
    it missing from queue/ and an orphan in originals/; repair lets the row follow the file."""
    from .fsck_site import add_media

    add_media(site, "m9", original="queue/m9/original.jpg")  # ready
    data = (site.content / "queue/m9/original.jpg").read_bytes()
    (site.content / "originals/m9").mkdir(parents=True)
    (site.content / "queue/m9/original.jpg").rename(site.content / "originals/m9/original.jpg")
    report = await fsck(site, cfg)
    assert kinds(report) == [
        ("missing", "queue/m9/original.jpg", "m9"),
        ("orphan", "originals/m9/original.jpg", None),
    ]
    first, second = await repair_twice(site, cfg)
    assert actions(first) == [("settled", "queue/m9/original.jpg")]
    assert first.remaining == 0 and second.findings == []
    assert (site.content / "originals/m9/original.jpg").read_bytes() == data
    row = one(db(site), "SELECT path FROM files WHERE media_id = 'm9'")
    assert row[0] == "originals/m9/original.jpg"  # type: ignore[index]
    assert one(db(site), "SELECT damaged FROM media WHERE id = 'm9'")[0] is None  # type: ignore[index]
    assert not any(p.is_file() for p in site.quarantine.rglob("*"))


async def test_a_file_that_cannot_be_read_is_a_mismatch(
    site: Site, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing disk answers EIO (root reads through any permission, so EIO is faked)."""
    import errno

    from gremlin.store import fsck as checks

    populate(site)
    real = checks.hash_file

    def failing_disk(path: Path, on_chunk: Any = None) -> tuple[int, str]:
        if path.name == "thumb.webp":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(path, on_chunk)

    monkeypatch.setattr(checks, "hash_file", failing_disk)
    report = await fsck(site, cfg)
    assert kinds(report) == [("mismatch", "media/m1/thumb.webp", "m1")]
    assert "cannot be read: Input/output error" in report.findings[0].detail
    repaired = await fsck(site, cfg, repair=True)
    assert actions(repaired) == [("requeued", "media/m1/thumb.webp")]
    assert list(site.quarantine.glob("*/media/m1/thumb.webp"))


async def test_a_media_deleted_during_the_scan_is_not_a_finding(site: Site, cfg: Settings) -> None:
    """The web deletes a media's rows, then its files, while fsck hashes: no `missing`, no
    requeue, no damaged flag for what a person deleted on purpose."""
    populate(site)
    deleted = []

    class DeleteDuringScan:
        def start(self, files: int, total_bytes: int) -> None:
            pass

        def advance(self, nbytes: int) -> None:  # a worker thread, hashing the first file
            if not deleted:
                conn = db(site)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM jobs WHERE media_id = 'm2'")
                conn.execute("DELETE FROM media WHERE id = 'm2'")  # files rows cascade
                conn.execute("COMMIT")
                conn.close()
                (site.content / "queue/m2/original.png").unlink()
                deleted.append(True)

        def finish(self) -> None:
            pass

    report = await fsck(site, cfg, repair=True, progress=DeleteDuringScan())
    assert deleted
    assert report.findings == [] and report.files_checked == 4
    assert report.to_json()["repaired"] == []

"""Run an import: read MediaGoblin, plan, then apply users, media, collections, comments.

Idempotent and resumable: every item is written with its legacy_map row in one transaction
(see steps.py), and the plan leaves out what legacy_map says is done. `dry_run` writes
nothing at all: a missing site is not created, an existing site's database is read without
creating its -wal/-shm files, no file is copied; the report says what a real run would do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import trio

from ..errors import DiskFull, GremlinError, Maintenance
from ..media.base import MediaType
from ..media.commit import commit_upload
from ..media.registry import load_media_types
from ..settings import Settings
from ..store import Site, Store, init_site, open_store
from .plan import ExistingUser, Issue, Kind, MediaPlan, Plan, excerpt, plan_import
from .reader import (
    MediaGoblinError,
    MgCollection,
    MgComment,
    MgInstance,
    open_mediagoblin_db,
    read_instance,
)
from .report import Report
from .steps import (
    Commit,
    Mapped,
    clear_staged,
    import_media,
    insert_collection,
    insert_comment,
    insert_user,
    pick_source,
    read_target,
    read_target_nowrite,
)

log = logging.getLogger(__name__)


def _read_mediagoblin(mg_db: Path) -> MgInstance:
    conn = open_mediagoblin_db(mg_db)
    try:
        return read_instance(conn)
    finally:
        conn.close()


def _stores(user_dev: Path) -> tuple[Path, Path]:
    public, queue = user_dev / "media" / "public", user_dev / "media" / "queue"
    if not user_dev.is_dir() or not (public.is_dir() or queue.is_dir()):
        raise MediaGoblinError(
            f"{user_dev} is not a MediaGoblin user_dev directory (no media/public/ in it)",
            hint="Pass the directory named by data_basedir in mediagoblin.ini"
            " (by default user_dev/ beside mediagoblin.ini).",
        )
    return public, queue


async def run_import(
    settings: Settings,
    mg_db: Path,
    user_dev: Path,
    *,
    dry_run: bool = False,
    commit: Commit = commit_upload,
    types: Mapping[str, MediaType] | None = None,
) -> Report:
    public, queue = _stores(user_dev)
    instance = await trio.to_thread.run_sync(_read_mediagoblin, mg_db)
    types = load_media_types(settings) if types is None else types
    site = Site(settings.site)

    def make_plan(mapped: Mapped, existing: Mapping[str, ExistingUser]) -> Plan:
        return plan_import(
            instance,
            public=public,
            queue=queue,
            exists=Path.is_file,
            mapped=mapped,
            existing_users=existing,
        )

    if dry_run:
        mapped, existing = await trio.to_thread.run_sync(read_target_nowrite, site.db)
        plan = make_plan(mapped, existing)
        report = Report.from_plan(plan, dry_run=True)
        await _simulate(plan, report, mapped, types)
        return report

    await trio.to_thread.run_sync(init_site, site.root)
    await trio.to_thread.run_sync(clear_staged, site)
    async with open_store(site.db) as store:
        mapped, existing = await store.read(read_target)
        plan = make_plan(mapped, existing)
        report = Report.from_plan(plan, dry_run=False)
        users = {int(s): int(t) for (k, s), t in mapped.items() if k is Kind.USER}
        media = {int(s): t for (k, s), t in mapped.items() if k is Kind.MEDIA}
        names = {u.id: u.username for u in instance.users}

        for up in plan.users:
            users[up.mg.id] = await store.write(insert_user, up)
            report.add(Kind.USER, str(up.mg.id), str(users[up.mg.id]))
            log.info("imported user: mediagoblin=%d user=%d", up.mg.id, users[up.mg.id])

        for mp in plan.media:
            entry = mp.entry
            mp, _, why, fallback = await trio.to_thread.run_sync(pick_source, mp, types)
            if why is None:
                try:
                    committed = await import_media(
                        store,
                        settings,
                        mp,
                        owner_id=users[entry.owner_id],
                        username=names[entry.owner_id],
                        types=types,
                        commit=commit,
                    )
                except (Maintenance, DiskFull):
                    raise  # the rest would fail the same way: stop; a re-run resumes
                except (GremlinError, OSError) as e:
                    why = f"not imported: {getattr(e, 'message', None) or e}"
                else:
                    media[entry.id] = committed.media_id
                    report.add(Kind.MEDIA, str(entry.id), committed.media_id, committed.kind.value)
                    log.info("imported media: mediagoblin=%d media=%s", entry.id, media[entry.id])
            _outcome(report, mp, why, fallback)

        await _apply_collections(store, plan, report, users, names, media, mapped)
        for c in plan.comments:
            if (why := _comment_blocked(c.entry_id, media)) is not None:
                report.skipped.append(_comment_issue(c, why))
                continue
            assert c.entry_id is not None
            cid = await store.write(insert_comment, c, media[c.entry_id], users[c.author_id])
            report.add(Kind.COMMENT, str(c.id), str(cid))
    return report


def _media_issue(mp: MediaPlan, why: str) -> Issue:
    return Issue(Kind.MEDIA, str(mp.entry.id), mp.label, why, str(mp.source))


def _outcome(report: Report, mp: MediaPlan, why: str | None, fallback: str | None) -> None:
    """Report a media's fate; one MediaGoblin had not finished says so either way."""
    if fallback is not None:
        report.problems.append(_media_issue(mp, fallback))
    if why is not None:
        report.problems.append(_media_issue(mp, f"{mp.history}; {why}" if mp.history else why))
    elif mp.history:
        report.notes.append(_media_issue(mp, f"{mp.history}; imported to be processed again"))


def _comment_issue(c: MgComment, why: str) -> Issue:
    return Issue(Kind.COMMENT, str(c.id), excerpt(c.content), why)


def _comment_blocked(entry_id: int | None, media: Mapping[int, str]) -> str | None:
    if entry_id is None or entry_id not in media:
        return f"its media (MediaGoblin entry {entry_id}) was not imported"
    return None


def collection_items(
    c: MgCollection, media: Mapping[int, str], mapped: Mapping[tuple[Kind, str], str]
) -> tuple[list[tuple[int, str, str | None, float, str]], list[Issue], int]:
    """The items of `c` still to add (position, media id, note, added, item id), those
    skipped (with why), and how many an earlier run added."""
    new, skipped, already = [], [], 0
    for position, item in enumerate(c.items):
        label = f"{c.title} #{position + 1}"
        if (Kind.COLLECTION_ITEM, str(item.id)) in mapped:
            already += 1
        elif item.entry_id is None:
            why = f"it points at a deleted media or at something else ({item.target})"
            skipped.append(Issue(Kind.COLLECTION_ITEM, str(item.id), label, why))
        elif item.entry_id not in media:
            why = f"its media (MediaGoblin entry {item.entry_id}) was not imported"
            skipped.append(Issue(Kind.COLLECTION_ITEM, str(item.id), label, why))
        else:
            new.append((position, media[item.entry_id], item.note, item.added, str(item.id)))
    return new, skipped, already


async def _apply_collections(
    store: Store,
    plan: Plan,
    report: Report,
    users: Mapping[int, int],
    names: Mapping[int, str],
    media: Mapping[int, str],
    mapped: Mapping[tuple[Kind, str], str],
) -> None:
    for c in plan.collections:
        items, skipped, already = collection_items(c, media, mapped)
        report.skipped.extend(skipped)
        report.already[Kind.COLLECTION_ITEM] += already
        is_new = (Kind.COLLECTION, str(c.id)) not in mapped
        if not items and not is_new:
            continue
        cid, _ = await store.write(
            insert_collection, c, users[c.owner_id], items, names[c.owner_id]
        )
        if is_new:
            report.add(Kind.COLLECTION, str(c.id), str(cid))
        for _, media_id, _, _, item_id in items:
            report.add(Kind.COLLECTION_ITEM, item_id, f"{cid}:{media_id}")


async def _simulate(
    plan: Plan,
    report: Report,
    mapped: Mapping[tuple[Kind, str], str],
    types: Mapping[str, MediaType],
) -> None:
    """What a real run would do, without writing: every check that needs no write."""
    media = {int(s): t for (k, s), t in mapped.items() if k is Kind.MEDIA}
    for up in plan.users:
        report.add(Kind.USER, str(up.mg.id), "")
    for mp in plan.media:
        mp, kind, why, fallback = await trio.to_thread.run_sync(pick_source, mp, types)
        _outcome(report, mp, why, fallback)
        if why is None:
            media[mp.entry.id] = ""
            report.add(Kind.MEDIA, str(mp.entry.id), "", kind)
    for c in plan.collections:
        items, skipped, already = collection_items(c, media, mapped)
        report.skipped.extend(skipped)
        report.already[Kind.COLLECTION_ITEM] += already
        if (Kind.COLLECTION, str(c.id)) not in mapped:
            report.add(Kind.COLLECTION, str(c.id), "")
        for *_, item_id in items:
            report.add(Kind.COLLECTION_ITEM, item_id, "")
    for comment in plan.comments:
        if (why := _comment_blocked(comment.entry_id, media)) is not None:
            report.skipped.append(_comment_issue(comment, why))
        else:
            report.add(Kind.COMMENT, str(comment.id), "")

"""What to import from a MediaGoblin instance, and what not (with why): pure decisions.

Input: the instance as read by `reader`, what earlier runs already imported (legacy_map),
the users the site already has, and a function telling whether a file exists. Output: a
`Plan` the runner applies in order (users, media, collections, comments), plus the items
skipped or reported before anything is written. Nothing here touches a database or a file.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping
from pathlib import Path

from ..accounts import NAME_RE
from .mapping import Source, SourceFrom, license_name, original_name, source_candidates
from .reader import MgCollection, MgComment, MgEntry, MgInstance, MgUser

SOURCE = "mediagoblin"  # legacy_map.source
SUPPORTED_TYPES = ("image", "raw_image", "video", "audio")  # raw: via its JPEG rendition
PROCESSED = "processed"


class Kind(enum.Enum):
    """legacy_map.kind, and the kinds counted in the report."""

    USER = "user"
    MEDIA = "media"
    MEDIA_URL = "media_url"  # "<username>/<slug>" -> media id, for /u/<user>/m/<slug>/
    FILE = "file"  # a public-store path -> media id (extra: MediaGoblin's file key)
    COLLECTION = "collection"
    COLLECTION_ITEM = "collection_item"
    COMMENT = "comment"


@dataclasses.dataclass(frozen=True)
class ExistingUser:
    id: int
    name: str
    email: str | None


@dataclasses.dataclass(frozen=True)
class Issue:
    """Something not imported (or imported with a caveat), for the report."""

    kind: Kind
    source_id: str
    label: str
    why: str
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class UserPlan:
    mg: MgUser
    name: str  # our user name (MediaGoblin's, unless taken by a different person)
    merge_into: int | None  # an existing user of ours that is this person


@dataclasses.dataclass(frozen=True)
class MediaPlan:
    entry: MgEntry
    source: Path  # absolute path of the file to import
    source_from: SourceFrom
    source_key: str  # MediaGoblin's file key, or "queue"
    original_name: str
    license: str
    label: str  # "<owner>: <title>", for the report
    history: str  # what MediaGoblin did with it, if it did not finish it (see `history`)
    fallbacks: tuple[Source, ...] = ()  # if `source` proves unreadable here, in order

    def falling_back(self, to: Source) -> MediaPlan:
        path, source_from, key = to
        return dataclasses.replace(
            self,
            source=path,
            source_from=source_from,
            source_key=key,
            original_name=original_name(path, source_from),
            fallbacks=(),
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    users: tuple[UserPlan, ...]
    media: tuple[MediaPlan, ...]
    collections: tuple[MgCollection, ...]
    comments: tuple[MgComment, ...]
    already: Mapping[Kind, int]  # imported by an earlier run
    skipped: tuple[Issue, ...]  # not imported, on purpose
    problems: tuple[Issue, ...]  # not imported (or degraded) because something is wrong
    notes: tuple[Issue, ...]  # imported, with something worth knowing


# -- the plan -------------------------------------------------------------------------------


def plan_import(
    instance: MgInstance,
    *,
    public: Path,
    queue: Path,
    exists: Callable[[Path], bool],
    mapped: Mapping[tuple[Kind, str], str],
    existing_users: Mapping[str, ExistingUser],
) -> Plan:
    """`mapped`: legacy_map rows of earlier runs ((kind, source id) -> our id);
    `existing_users`: our users by casefolded name."""
    skipped: list[Issue] = []
    problems: list[Issue] = []
    notes: list[Issue] = []
    already: dict[Kind, int] = {}

    def done(kind: Kind, source_id: int) -> bool:
        if (kind, str(source_id)) in mapped:
            already[kind] = already.get(kind, 0) + 1
            return True
        return False

    users = _plan_users(instance, mapped, existing_users, done, problems, notes)
    user_ids = {u.mg.id for u in users} | {int(sid) for (kind, sid) in mapped if kind is Kind.USER}
    usernames = {u.id: u.username for u in instance.users}

    media: list[MediaPlan] = []
    for entry in instance.entries:
        label = f"{usernames.get(entry.owner_id, '?')}: {entry.title}"
        issue = functools.partial(Issue, Kind.MEDIA, str(entry.id), label)
        if done(Kind.MEDIA, entry.id):
            continue
        if entry.owner_id not in user_ids:
            remote = entry.owner_id in instance.remote_user_ids
            skipped.append(
                issue(
                    "its owner is a remote (federated) user"
                    if remote
                    else "its owner was not imported"
                )
            )
            continue
        if entry.media_type not in SUPPORTED_TYPES:
            skipped.append(issue(f"media type {entry.media_type!r} is not supported here"))
            continue
        candidates = source_candidates(entry, public, queue, exists)
        if not candidates:
            where = entry.queued_media_file or ", ".join(f.path for f in entry.files) or "none"
            state = {PROCESSED: ""}.get(entry.state, f"MediaGoblin left it {entry.state}; ")
            problems.append(issue(f"{state}no file of it exists (looked for: {where})"))
            continue
        source, source_from, key = candidates[0]
        if entry.state != PROCESSED:
            pass  # the runner notes it once the upload proved readable (see `history`)
        elif source_from is SourceFrom.RENDITION and entry.media_type != "video":
            problems.append(
                issue(
                    f"its original is missing; imported MediaGoblin's {key!r} rendition instead",
                    str(source),
                )
            )
        elif source_from is SourceFrom.RENDITION:
            notes.append(
                issue(
                    f"MediaGoblin did not keep the original video; its best"
                    f" rendition {key!r} is the source",
                    str(source),
                )
            )
        if entry.has_location:
            notes.append(
                issue(
                    "MediaGoblin stored a GPS position for it: not imported (never shown publicly)"
                )
            )
        media.append(
            MediaPlan(
                entry=entry,
                source=source,
                source_from=source_from,
                source_key=key,
                original_name=original_name(source, source_from),
                license=license_name(entry.license),
                label=label,
                history=history(entry),
                fallbacks=tuple(candidates[1:]),
            )
        )

    collections = []
    for c in instance.collections:
        if done(Kind.COLLECTION, c.id) and not _has_new_items(c, mapped):
            n = sum((Kind.COLLECTION_ITEM, str(i.id)) in mapped for i in c.items)
            already[Kind.COLLECTION_ITEM] = already.get(Kind.COLLECTION_ITEM, 0) + n
        elif c.owner_id not in user_ids:
            skipped.append(Issue(Kind.COLLECTION, str(c.id), c.title, "its owner was not imported"))
        else:
            collections.append(c)
    comments = []
    for comment in instance.comments:
        if done(Kind.COMMENT, comment.id):
            continue
        if comment.author_id not in user_ids:
            skipped.append(
                Issue(
                    Kind.COMMENT,
                    str(comment.id),
                    excerpt(comment.content),
                    "its author was not imported (remote or missing user)",
                )
            )
            continue
        if comment.entry_id is None:
            skipped.append(
                Issue(
                    Kind.COMMENT,
                    str(comment.id),
                    excerpt(comment.content),
                    "it is on a deleted media or on something that is not media",
                )
            )
            continue
        comments.append(comment)
    if instance.deleted_entries:
        notes.append(
            Issue(
                Kind.MEDIA,
                "-",
                "deleted",
                f"{instance.deleted_entries} media"
                " deleted in MediaGoblin (core__graveyard): nothing to import",
            )
        )
    return Plan(
        tuple(users),
        tuple(media),
        tuple(collections),
        tuple(comments),
        already,
        tuple(skipped),
        tuple(problems),
        tuple(notes),
    )


def history(entry: MgEntry) -> str:
    """What MediaGoblin did with an entry it did not finish ('' for a processed one)."""
    if entry.state == PROCESSED:
        return ""
    if entry.state == "failed":
        why = f" ({entry.fail_error})" if entry.fail_error else ""
        return f"MediaGoblin failed to process it{why}"
    return f"MediaGoblin left it {entry.state}"


def _has_new_items(c: MgCollection, mapped: Mapping[tuple[Kind, str], str]) -> bool:
    return any((Kind.COLLECTION_ITEM, str(i.id)) not in mapped for i in c.items)


def excerpt(text: str, n: int = 40) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _plan_users(
    instance: MgInstance,
    mapped: Mapping[tuple[Kind, str], str],
    existing: Mapping[str, ExistingUser],
    done: Callable[[Kind, int], bool],
    problems: list[Issue],
    notes: list[Issue],
) -> list[UserPlan]:
    taken = {name for name in existing}
    plans = []
    for u in instance.users:
        if done(Kind.USER, u.id):
            continue
        issue = functools.partial(Issue, Kind.USER, str(u.id), u.username)
        mine = existing.get(u.username.casefold())
        name, merge = u.username, None
        if mine is not None:
            same = bool(u.email and mine.email and u.email.casefold() == mine.email.casefold())
            if same:
                merge = mine.id
                notes.append(
                    issue(
                        f"a user {mine.name!r} with the same e-mail already exists"
                        " here: their media are imported into that account"
                    )
                )
            else:
                name = _free_name(u.username, taken)
                problems.append(
                    issue(f"the name is taken here by someone else: imported as {name!r}")
                )
        taken.add(name.casefold())
        if merge is None and not NAME_RE.match(name):
            notes.append(issue("the name is not one new accounts may take here; kept as is"))
        if merge is None and not (u.pw_hash or "").startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(
                issue(
                    "no password hash we can verify (not bcrypt): the user must"
                    " be given a new password"
                )
            )
        plans.append(UserPlan(u, name, merge))
    return plans


def _free_name(name: str, taken: set[str]) -> str:
    n = 1
    while True:
        candidate = f"{name}-mg" if n == 1 else f"{name}-mg{n}"
        if candidate.casefold() not in taken:
            return candidate
        n += 1

"""A MediaGoblin instance as plain, frozen dataclasses (filled by `reader`)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MgUser:
    id: int
    username: str
    email: str | None
    pw_hash: str | None
    bio: str
    url: str
    location: str
    created: float
    privileges: frozenset[str]
    banned: bool

    @property
    def is_admin(self) -> bool:
        return "admin" in self.privileges


@dataclasses.dataclass(frozen=True)
class MgFile:
    key: str  # "original", "medium", "thumb", "webm_480p", ...
    path: str  # relative to the public store: media_entries/<id>/<name>


@dataclasses.dataclass(frozen=True)
class MgTag:
    name: str  # as the uploader typed it
    slug: str


@dataclasses.dataclass(frozen=True)
class MgEntry:
    id: int
    public_id: str | None
    owner_id: int
    title: str
    slug: str | None
    description: str
    media_type: str  # "image", "video", "audio", or the full name of another type
    state: str  # unprocessed, processing, processed, failed
    license: str | None
    created: float
    fail_error: str | None
    queued_media_file: str | None  # relative to the queue store
    has_location: bool  # GPS in core__locations: never copied anywhere public
    files: tuple[MgFile, ...]
    tags: tuple[MgTag, ...]

    def file(self, key: str) -> MgFile | None:
        return next((f for f in self.files if f.key == key), None)


@dataclasses.dataclass(frozen=True)
class MgItem:
    id: int
    entry_id: int | None  # None: the item points at something else (a deleted entry ...)
    target: str  # what it points at, for reports: "core__media_entries 8", "core__graveyard 1"
    note: str | None
    added: float
    position: int | None


@dataclasses.dataclass(frozen=True)
class MgCollection:
    id: int
    owner_id: int
    title: str
    slug: str | None
    description: str
    created: float
    type: str
    items: tuple[MgItem, ...]  # in MediaGoblin's display order


@dataclasses.dataclass(frozen=True)
class MgComment:
    id: int
    author_id: int
    entry_id: int | None  # None: on something that is not a media entry (or is gone)
    content: str
    created: float


@dataclasses.dataclass(frozen=True)
class MgInstance:
    users: tuple[MgUser, ...]
    remote_user_ids: frozenset[int]
    entries: tuple[MgEntry, ...]
    collections: tuple[MgCollection, ...]
    comments: tuple[MgComment, ...]
    deleted_entries: int  # tombstones in core__graveyard

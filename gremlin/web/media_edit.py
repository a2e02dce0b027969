"""Changes an owner (or admin) makes to a media from its pages: plain sync write functions."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import unicodedata

from ..errors import BadRequest, Conflict, NotFound
from ..media.commit import MAX_TITLE_CHARS, VISIBILITIES, normalise_tags, slugify

MAX_DESCRIPTION_CHARS = 20_000
MAX_LICENSE_CHARS = 200

# Licenses offered in the edit form; any other text is kept as written.
LICENSES = (
    "",
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
)


@dataclasses.dataclass(frozen=True)
class MediaChanges:
    title: str
    description: str
    tags: tuple[str, ...]
    visibility: str
    license: str

    @classmethod
    def from_form(cls, form: dict[str, str]) -> MediaChanges:
        form = {key: without_controls(value) for key, value in form.items()}
        visibility = form.get("visibility", "public")
        if visibility not in VISIBILITIES:
            raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
        description = form.get("description", "").replace("\r\n", "\n")
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise BadRequest(f"the description is longer than {MAX_DESCRIPTION_CHARS} characters")
        return cls(
            title=" ".join(form.get("title", "").split())[:MAX_TITLE_CHARS],
            description=description,
            tags=normalise_tags(form.get("tags", "")),
            visibility=visibility,
            license=form.get("license", "").strip()[:MAX_LICENSE_CHARS],
        )


def without_controls(text: str) -> str:
    """`text` without control characters (NUL, ESC, ...) but tabs and line breaks; refused if
    it is not Unicode text (a lone surrogate, which JSON can carry, SQLite cannot store)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise BadRequest("the text is not valid Unicode (a lone surrogate?)") from None
    return "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c) != "Cc")


def update_media(conn: sqlite3.Connection, media_id: str, changes: MediaChanges) -> None:
    cur = conn.execute(
        "UPDATE media SET title = ?, slug = ?, description = ?, visibility = ?, license = ?,"
        " updated_at = ? WHERE id = ?",
        (
            changes.title,
            slugify(changes.title),
            changes.description,
            changes.visibility,
            changes.license,
            time.time(),
            media_id,
        ),
    )
    if cur.rowcount == 0:
        raise NotFound("there is no such media")
    conn.execute("DELETE FROM tags WHERE media_id = ?", (media_id,))
    conn.executemany(
        "INSERT INTO tags (media_id, tag) VALUES (?, ?)", [(media_id, t) for t in changes.tags]
    )


def delete_media_rows(conn: sqlite3.Connection, media_id: str) -> list[str]:
    """Delete the media's rows (files, jobs, tags and collection items cascade) and return the
    content-relative paths of its files, to remove once this transaction has committed.

    Refused while one of its jobs runs: the job's process would go on writing outputs."""
    running = conn.execute(
        "SELECT count(*) FROM jobs WHERE media_id = ? AND state = 'running'", (media_id,)
    ).fetchone()[0]
    if running:
        raise Conflict(
            "this media is being processed right now",
            hint="Wait until its running job finishes (or fails), then delete it.",
        )
    paths = [r[0] for r in conn.execute("SELECT path FROM files WHERE media_id = ?", (media_id,))]
    cur = conn.execute("DELETE FROM media WHERE id = ?", (media_id,))
    if cur.rowcount == 0:
        raise NotFound("there is no such media")
    return paths

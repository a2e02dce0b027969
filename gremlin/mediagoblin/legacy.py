"""Where an old MediaGoblin URL lives now, from legacy_map: plain sync queries for the web.

/u/<user>/m/<slug>/      (or /u/<user>/m/id:<n>/)  -> our media page
/mgoblin_media/<path>    -> our file of the corresponding role (MediaGoblin's `medium`
                            -> our `medium`, `thumb` -> `thumb`, `webm_480p` -> the video
                            rendition nearest 480 lines, ...), else the original
"""

from __future__ import annotations

import json
import re
import sqlite3

from .plan import SOURCE, Kind

VIDEO_PREFIX = "video_"
AUDIO_PREFIX = "audio_"
PREFERENCES = {
    "original": ("original",),
    "medium": ("medium", "large", "original"),
    "thumb": ("thumb", "medium", "poster", "waveform", "original"),
    "spectrogram": ("waveform", "thumb", "original"),
}


def _lookup(conn: sqlite3.Connection, kind: Kind, source_id: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT target_id, extra FROM legacy_map WHERE source = ? AND kind = ? AND source_id = ?",
        (SOURCE, kind.value, source_id),
    ).fetchone()


def legacy_media_target(conn: sqlite3.Connection, user: str, slug: str) -> str | None:
    """Our media id for MediaGoblin's /u/<user>/m/<slug>/ (slug may be `id:<n>`)."""
    if slug.startswith("id:"):
        row = _lookup(conn, Kind.MEDIA, slug[3:])
        if row is None:
            return None
        owner = json.loads(row["extra"] or "{}").get("user")
        return str(row["target_id"]) if owner is None or owner == user else None
    row = _lookup(conn, Kind.MEDIA_URL, f"{user}/{slug}")
    return None if row is None else str(row["target_id"])


def choose_role(key: str, roles: dict[str, int | None]) -> str | None:
    """Our role for MediaGoblin's file `key`, among `roles` (role -> height) that exist."""
    height = None
    if m := re.fullmatch(r"webm_(\d+)p", key):
        height = int(m.group(1))
    if height is not None or key == "webm_video":
        videos = {r: h for r, h in roles.items() if r.startswith(VIDEO_PREFIX)}
        if videos:
            target = height or 480
            return min(videos, key=lambda r: (abs((videos[r] or 0) - target), r))
    if key == "webm_audio":  # Vorbis in WebM: the nearest of ours is Opus, then any audio
        audios = sorted(r for r in roles if r.startswith(AUDIO_PREFIX))
        audios.sort(key=lambda r: r != f"{AUDIO_PREFIX}opus")
        if audios:
            return audios[0]
    for role in PREFERENCES.get(key, ("original",)):
        if role in roles:
            return role
    return "original" if "original" in roles else None


def legacy_file_target(conn: sqlite3.Connection, path: str) -> tuple[str, str | None] | None:
    """(our media id, our file role or None) for MediaGoblin's /mgoblin_media/<path>."""
    row = _lookup(conn, Kind.FILE, path)
    if row is None:
        return None
    media_id = str(row["target_id"])
    key = json.loads(row["extra"] or "{}").get("key", "original")
    roles = {
        r["role"]: r["height"]
        for r in conn.execute("SELECT role, height FROM files WHERE media_id = ?", (media_id,))
    }
    return media_id, choose_role(key, roles)


def legacy_user_target(conn: sqlite3.Connection, user: str) -> str | None:
    """Our user name for MediaGoblin's /u/<user>/ (renamed when the name was taken here)."""
    row = conn.execute(
        "SELECT users.name FROM legacy_map JOIN users"
        " ON users.id = CAST(legacy_map.target_id AS INTEGER)"
        " WHERE legacy_map.source = ? AND legacy_map.kind = ?"
        " AND json_extract(legacy_map.extra, '$.username') = ?",
        (SOURCE, Kind.USER.value, user),
    ).fetchone()
    return None if row is None else str(row["name"])


def legacy_collection_target(
    conn: sqlite3.Connection, user: str, slug: str
) -> tuple[str, str] | None:
    """(our owner name, our slug) for MediaGoblin's /u/<user>/collection/<slug>/."""
    row = conn.execute(
        "SELECT c.slug, u.name FROM legacy_map l"
        " JOIN collections c ON c.id = CAST(l.target_id AS INTEGER)"
        " JOIN users u ON u.id = c.owner_id WHERE l.source = ? AND l.kind = ?"
        " AND json_extract(l.extra, '$.slug') = ? AND json_extract(l.extra, '$.user') = ?",
        (SOURCE, Kind.COLLECTION.value, slug, user),
    ).fetchone()
    return None if row is None else (str(row["name"]), str(row["slug"]))

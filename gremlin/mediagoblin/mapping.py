"""How MediaGoblin's values map to ours: license names, and which file is the source."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from pathlib import Path

from .reader import MgEntry


class SourceFrom(enum.Enum):
    ORIGINAL = "original"  # MediaGoblin's kept original
    QUEUE = "queue"  # the raw upload still in the queue store (failed or stuck entries)
    RENDITION = "rendition"  # MediaGoblin did not keep the original: its best rendition


# -- licenses -------------------------------------------------------------------------------

_CC = re.compile(r"^https?://creativecommons\.org/licenses/([a-z-]+)/(\d+(?:\.\d+)?)/?")
_CC0 = re.compile(r"^https?://creativecommons\.org/publicdomain/zero/(\d+(?:\.\d+)?)/?")
_PDM = re.compile(r"^https?://creativecommons\.org/publicdomain/mark/(\d+(?:\.\d+)?)/?")


def license_name(uri: str | None) -> str:
    """MediaGoblin's license URI as the short name it shows ('' = All rights reserved)."""
    if not uri:
        return ""
    if m := _CC.match(uri):
        return f"CC {m.group(1).upper()} {m.group(2)}"
    if m := _CC0.match(uri):
        return f"CC0 {m.group(1)}"
    if _PDM.match(uri):
        return "Public Domain"
    return uri


# -- choosing the file ----------------------------------------------------------------------


def _rendition_rank(key: str) -> tuple[int, int]:
    """Higher is better: webm_<N>p by N, then MediaGoblin's older single renditions."""
    if m := re.fullmatch(r"webm_(\d+)p", key):
        return (2, int(m.group(1)))
    return {"webm_video": (1, 0), "webm_audio": (1, 0), "medium": (0, 1)}.get(key, (-1, 0))


Source = tuple[Path, SourceFrom, str]  # (absolute path, where from, MediaGoblin's file key)


def source_candidates(
    entry: MgEntry, public: Path, queue: Path, exists: Callable[[Path], bool]
) -> list[Source]:
    """The files that could stand for `entry`, best first: MediaGoblin's original; the raw
    upload left in the queue store; then its renditions, largest first (never a thumbnail).
    Only files that exist."""
    found: list[Source] = []
    original = entry.file("original")
    if original is not None and exists(public / original.path):
        found.append((public / original.path, SourceFrom.ORIGINAL, "original"))
    if entry.queued_media_file and exists(queue / entry.queued_media_file):
        found.append((queue / entry.queued_media_file, SourceFrom.QUEUE, "queue"))
    ranked = sorted(
        (f for f in entry.files if _rendition_rank(f.key)[0] >= 0),
        key=lambda f: _rendition_rank(f.key),
        reverse=True,
    )
    found += [
        (public / f.path, SourceFrom.RENDITION, f.key) for f in ranked if exists(public / f.path)
    ]
    return found


def choose_source(
    entry: MgEntry, public: Path, queue: Path, exists: Callable[[Path], bool]
) -> Source | None:
    """The best file to import for `entry`, or None: no file of it exists at all."""
    found = source_candidates(entry, public, queue, exists)
    return found[0] if found else None


def original_name(source: Path, source_from: SourceFrom) -> str:
    if source_from is SourceFrom.RENDITION:
        # a_clip.720p.webm -> a_clip.webm: the name the uploader gave, with the real format
        stem = source.name.split(".")[0]
        return f"{stem}{source.suffix}"
    return source.name

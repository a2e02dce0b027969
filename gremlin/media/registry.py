"""Loading media types from the `gremlin.media_types` entry-point group, and sniffing.

Built-in types register through the same group as third-party ones (see pyproject.toml).
Two types claiming one input (the same MIME type in their `mimes`) is a start-up error naming
both and the setting that chooses, `media_type_choice` ("image/gif=video,..."): never silent
order-dependence. The losing type is wrapped so it no longer claims that input.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import GremlinError, SettingsError, Unsupported
from ..settings import Settings
from .base import MediaType

log = logging.getLogger(__name__)

GROUP = "gremlin.media_types"
HEAD_BYTES = 8192  # sniffers get at least 4 KiB; ISO-BMFF brands and RIFF headers fit easily


class MediaTypeConflict(GremlinError):
    code = "media_type_conflict"

    def __init__(self, mime: str, names: Sequence[str]) -> None:
        both = " and ".join(repr(n) for n in names)
        super().__init__(
            f"media types {both} both claim {mime} input",
            hint=f"Choose one with the setting media_type_choice, e.g. "
            f'media_type_choice = "{mime}={names[0]}" in gremlin.toml.',
        )
        self.mime = mime
        self.names = tuple(names)


class _Restricted:
    """A media type that lost some inputs to another type through `media_type_choice`."""

    def __init__(self, inner: MediaType, lost: frozenset[str]) -> None:
        self._inner = inner
        self._lost = lost
        self.name = inner.name
        self.kind = inner.kind
        self.mimes = [m for m in inner.mimes if m not in lost]

    def sniff(self, head: bytes) -> str | None:
        mime = self._inner.sniff(head)
        return None if mime in self._lost else mime

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def __repr__(self) -> str:
        return f"<{self.name} media type without {sorted(self._lost)}>"


def parse_choice(text: str) -> dict[str, str]:
    """'image/gif=video, image/heic=image' -> {"image/gif": "video", "image/heic": "image"}."""
    choice: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        mime, sep, name = pair.partition("=")
        if not sep or not mime.strip() or not name.strip():
            raise SettingsError(
                "media_type_choice", text, "settings", "expected 'mime/type=type-name' pairs"
            )
        choice[mime.strip().lower()] = name.strip()
    return choice


def _entry_point_types() -> dict[str, MediaType]:
    found: dict[str, MediaType] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        try:
            found[ep.name] = ep.load()
        except (ImportError, AttributeError) as e:
            log.warning("media type not loaded: name=%s target=%s error=%s", ep.name, ep.value, e)
    return found


def resolve(types: Mapping[str, MediaType], choice: Mapping[str, str]) -> dict[str, MediaType]:
    """Apply `choice` to overlapping claims; raise MediaTypeConflict for an unresolved one."""
    claims: dict[str, list[str]] = {}
    for name, media_type in types.items():
        for mime in media_type.mimes:
            claims.setdefault(mime.lower(), []).append(name)
    lost: dict[str, set[str]] = {}
    for mime, names in claims.items():
        if len(names) < 2:
            continue
        winner = choice.get(mime)
        if winner is None:
            raise MediaTypeConflict(mime, names)
        if winner not in names:
            raise SettingsError(
                "media_type_choice",
                f"{mime}={winner}",
                "settings",
                f"{mime} is claimed by {', '.join(names)}, not by {winner!r}",
            )
        for name in names:
            if name != winner:
                lost.setdefault(name, set()).add(mime)
    return {
        name: _Restricted(t, frozenset(lost[name])) if name in lost else t  # type: ignore[misc]
        for name, t in types.items()
    }


def load_media_types(
    settings: Settings, extra: Mapping[str, MediaType] | None = None
) -> dict[str, MediaType]:
    """Every registered media type by name (plus `extra`, e.g. fakes in tests), conflicts
    resolved by `settings.media_type_choice` or refused."""
    types = _entry_point_types()
    types.update(extra or {})
    if not types:
        log.warning("no media types loaded: every upload will be refused")
    return resolve(types, parse_choice(settings.media_type_choice))


@functools.cache
def _installed_types(choice: str) -> dict[str, MediaType]:
    return resolve(_entry_point_types(), parse_choice(choice))


def installed_media_types(settings: Settings) -> dict[str, MediaType]:
    """`load_media_types(settings)`, loaded once per process (for per-upload callers)."""
    return dict(_installed_types(settings.media_type_choice))


def supported_mimes(types: Mapping[str, MediaType]) -> list[str]:
    return sorted({m for t in types.values() for m in t.mimes})


def _looks_like(head: bytes) -> str:
    if not head:
        return "an empty file"
    sample = head[:1024]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # a multi-byte sequence cut at the end is still text
            return "a file of an unknown format"
    return "text" if b"\0" not in sample else "a file of an unknown format"


def _safe_sniff(media_type: MediaType, head: bytes) -> str | None:
    """A sniffer that raises (a third-party bug) claims nothing rather than failing uploads."""
    try:
        return media_type.sniff(head)
    except Exception:
        log.exception("media type sniffer failed: name=%s", media_type.name)
        return None


def sniff(head: bytes, types: Mapping[str, MediaType]) -> tuple[MediaType, str]:
    """The one media type accepting a file that starts with `head`, and its MIME type."""
    claims = [(t, mime) for t in types.values() if (mime := _safe_sniff(t, head))]
    if len(claims) > 1:
        raise MediaTypeConflict(claims[0][1], [t.name for t, _ in claims])
    if not claims:
        raise Unsupported(
            f"unsupported file: it looks like {_looks_like(head)}",
            hint="Supported: " + ", ".join(supported_mimes(types)) + ".",
        )
    return claims[0]

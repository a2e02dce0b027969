"""Finding ffmpeg, checking its encoders, and reading its `-progress` file.

Which ffmpeg: the `ffmpeg_path` setting; else `ffmpeg` on PATH; else the static ffmpeg shipped
in the imageio-ffmpeg wheel (which has no ffprobe: probing then falls back to ffmpeg itself).
Which ffprobe: the `ffprobe_path` setting; else one beside the chosen ffmpeg; else PATH; else none.

`check_ffmpeg(settings)` is the start-up check: it raises `FfmpegError` naming the missing
encoder and the ffmpeg it asked, so a server refuses to start rather than failing jobs later.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import GremlinError
from ..settings import Settings

log = logging.getLogger(__name__)

# What each encoder is needed for; alternatives in one tuple (the first found is used).
NEEDED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("libx264",), "H.264 video renditions"),
    (("aac",), "AAC audio in MP4 renditions"),
    (("libopus",), "Opus audio"),
    (("libmp3lame", "aac"), "the MP3 (else AAC) audio fallback"),
    (("mjpeg",), "JPEG posters"),
)
EXTRA: Mapping[str, tuple[tuple[str, ...], str]] = {
    "vp9": (("libvpx-vp9",), "VP9 WebM renditions (video_extra_codecs=vp9)"),
    "av1": (("libsvtav1",), "AV1 WebM renditions (video_extra_codecs=av1)"),
}
INSTALL_HINT = (
    "Install an ffmpeg built with it (Debian: apt install ffmpeg), or set ffmpeg_path to one; "
    "the imageio-ffmpeg wheel's static ffmpeg has every encoder contentgremlin uses."
)


class FfmpegError(GremlinError):
    code = "ffmpeg"


@dataclasses.dataclass(frozen=True)
class Tools:
    ffmpeg: str
    ffprobe: str | None  # None: probe with `ffmpeg -i`
    version: str
    encoders: frozenset[str]
    source: str  # "ffmpeg_path setting", "PATH" or "imageio-ffmpeg"

    def has(self, encoder: str) -> bool:
        return encoder in self.encoders

    def describe(self) -> dict[str, object]:
        """For `gremlin status`."""
        wanted = sorted({name for alts, _ in (*NEEDED, *EXTRA.values()) for name in alts})
        return {
            "path": self.ffmpeg,
            "version": self.version,
            "source": self.source,
            "ffprobe": self.ffprobe,
            "encoders": {name: name in self.encoders for name in wanted},
        }


def extra_codecs(settings: Settings) -> tuple[str, ...]:
    """The extra WebM codecs asked for, in a stable order."""
    asked = {c.strip() for c in settings.video_extra_codecs.split(",") if c.strip()}
    return tuple(c for c in ("vp9", "av1") if c in asked)


def missing_encoders(encoders: frozenset[str], settings: Settings) -> list[tuple[str, str]]:
    """(encoder names, what for) for every requirement none of whose encoders exists."""
    needed = [*NEEDED, *(EXTRA[c] for c in extra_codecs(settings))]
    return [(" or ".join(alts), why) for alts, why in needed if not set(alts) & encoders]


def _locate(ffmpeg_path: str) -> tuple[str, str]:
    if ffmpeg_path:
        found = shutil.which(ffmpeg_path)
        if found is None:
            raise FfmpegError(
                f"ffmpeg_path={ffmpeg_path!r} is not an executable file",
                hint="Point ffmpeg_path at an ffmpeg binary, or unset it to use PATH.",
            )
        return str(Path(found).absolute()), "ffmpeg_path setting"
    found = shutil.which("ffmpeg")
    if found is not None:
        return found, "PATH"
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg"
    except (ImportError, RuntimeError) as e:
        raise FfmpegError(
            "no ffmpeg found: ffmpeg_path is unset, none is on PATH, and imageio-ffmpeg has none",
            hint="Install ffmpeg (Debian: apt install ffmpeg), or set ffmpeg_path.",
        ) from e


def _locate_ffprobe(ffprobe_path: str, ffmpeg: str) -> str | None:
    if ffprobe_path:
        found = shutil.which(ffprobe_path)
        if found is None:
            raise FfmpegError(
                f"ffprobe_path={ffprobe_path!r} is not an executable file",
                hint="Point ffprobe_path at an ffprobe binary, or unset it.",
            )
        return str(Path(found).absolute())
    sibling = Path(ffmpeg).with_name("ffprobe")
    if os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("ffprobe")


def _run_quiet(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FfmpegError(
            f"could not run {argv[0]}: {e}", hint="Check ffmpeg_path and that ffmpeg runs."
        ) from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FfmpegError(
            f"{' '.join(argv)} exited {done.returncode}: {last}",
            hint="Check ffmpeg_path and that ffmpeg runs.",
        )
    return done.stdout


def parse_encoders(text: str) -> frozenset[str]:
    """Encoder names from `ffmpeg -encoders` (lines like ' V....D libx264   libx264 H.264')."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^\s*[VAS][A-Z.]{5}\s+(\S+)\s", line)
        if m and m.group(1) != "=":
            names.add(m.group(1))
    return frozenset(names)


def parse_version(text: str) -> str:
    m = re.search(r"ffmpeg version (\S+)", text)
    return m.group(1) if m else "unknown"


@functools.lru_cache(maxsize=8)
def _tools(ffmpeg_path: str, ffprobe_path: str) -> Tools:
    ffmpeg, source = _locate(ffmpeg_path)
    version = parse_version(_run_quiet([ffmpeg, "-hide_banner", "-version"]))
    encoders = parse_encoders(_run_quiet([ffmpeg, "-hide_banner", "-encoders"]))
    tools = Tools(ffmpeg, _locate_ffprobe(ffprobe_path, ffmpeg), version, encoders, source)
    log.info("ffmpeg=%s version=%s source=%s ffprobe=%s", ffmpeg, version, source, tools.ffprobe)
    return tools


def find_tools(settings: Settings) -> Tools:
    """The ffmpeg (and ffprobe) to use and its encoders; cached per path settings."""
    return _tools(settings.ffmpeg_path, settings.ffprobe_path)


def check_ffmpeg(settings: Settings) -> Tools:
    """The start-up check: the tools, or FfmpegError naming what is missing and which ffmpeg."""
    tools = find_tools(settings)
    missing = missing_encoders(tools.encoders, settings)
    if missing:
        names, why = missing[0]
        also = f" (also missing: {', '.join(n for n, _ in missing[1:])})" if missing[1:] else ""
        raise FfmpegError(
            f"ffmpeg {tools.version} at {tools.ffmpeg} has no encoder {names},"
            f" needed for {why}{also}",
            hint=INSTALL_HINT,
        )
    return tools


def status(settings: Settings) -> dict[str, object]:
    """The "ffmpeg" key of `gremlin status`: never raises."""
    try:
        tools = find_tools(settings)
    except GremlinError as e:
        return {"error": e.message}
    data = tools.describe()
    missing = missing_encoders(tools.encoders, settings)
    data["missing"] = [names for names, _ in missing]
    return data


def describe_ffmpeg(data: Mapping[str, Any]) -> str:
    """One line for `gremlin status` from `status()`."""
    if "error" in data:
        return f"ffmpeg: unusable: {data['error']}"
    encoders = data.get("encoders") or {}
    have = " ".join(name if ok else f"-{name}" for name, ok in encoders.items())
    probe = data.get("ffprobe") or "none (probing with ffmpeg)"
    where = f"{data['path']} {data['version']} ({data['source']})"
    return f"ffmpeg: {where}; ffprobe: {probe}; encoders: {have}"


# -- the -progress file -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Progress:
    out_time_seconds: float | None  # of the last complete block
    ended: bool  # ffmpeg wrote progress=end
    blocks: int  # complete blocks seen (each ends with a progress= line)


def parse_progress(text: str) -> Progress:
    """Read ffmpeg's `-progress` output: key=value blocks, each ending with `progress=...`.

    Only complete blocks count (the file is read while ffmpeg appends to it). `out_time_us` is
    preferred; `out_time_ms` (which is microseconds too, an old ffmpeg quirk) and `out_time`
    (HH:MM:SS.micro) are fallbacks; "N/A" and negative values are ignored.
    """
    out_time: float | None = None
    pending: dict[str, str] = {}
    blocks = 0
    ended = False
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        if key != "progress":
            pending[key] = value.strip()
            continue
        blocks += 1
        ended = value.strip() == "end"
        seconds = _block_seconds(pending)
        if seconds is not None:
            out_time = seconds
        pending = {}
    return Progress(out_time, ended, blocks)


def _block_seconds(block: Mapping[str, str]) -> float | None:
    for key in ("out_time_us", "out_time_ms"):
        raw = block.get(key, "")
        if raw.lstrip("-").isdigit():
            value = int(raw)
            return value / 1e6 if value >= 0 else None
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", block.get("out_time", ""))
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


def progress_fraction(text: str, duration_seconds: float | None) -> float | None:
    """0..1 from a progress file and the media duration; 1.0 once ffmpeg says end."""
    parsed = parse_progress(text)
    if parsed.ended:
        return 1.0
    if parsed.out_time_seconds is None or not duration_seconds or duration_seconds <= 0:
        return None
    return max(0.0, min(1.0, parsed.out_time_seconds / duration_seconds))

"""Probing untrusted input: container, streams, duration, dimensions, rotation.

`probe_worker` runs as the "probe" job's Python step inside the runner (a detached process, so a
file that makes ffprobe hang or crash harms nothing). It uses ffprobe's JSON when there is an
ffprobe, else parses the banner of `ffmpeg -i`, and decodes the file once (`-f null`) when the
container does not state a duration. A file that can never work (empty, unreadable, no audio
or video stream) exits EXIT_BAD_INPUT with a last log line that says why: no retries.

The parsers and `route` are pure; the worker is the only part that runs processes.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import EXIT_BAD_INPUT, Kind
from .ffmpeg import parse_progress
from .waveform import _die_with_parent

BAD_INPUT_MARKERS = (
    "Invalid data found when processing input",
    "moov atom not found",
    "End of file",
    "could not find codec parameters",
    "does not contain any stream",
)


class StreamType(enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclasses.dataclass(frozen=True)
class Stream:
    index: int
    type: StreamType
    codec: str
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    rotation: int = 0  # degrees, 0/90/180/270
    sar: float = 1.0
    attached_pic: bool = False  # cover art, not a video
    channels: int = 0
    sample_rate: int = 0

    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: sample aspect ratio applied, then rotation."""
        width = round(self.width * self.sar) if self.sar > 0 else self.width
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height


@dataclasses.dataclass(frozen=True)
class ProbeInfo:
    container: str  # ffmpeg's format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None
    bit_rate: int | None
    streams: tuple[Stream, ...]

    @property
    def video(self) -> Stream | None:
        return next(
            (s for s in self.streams if s.type is StreamType.VIDEO and not s.attached_pic), None
        )

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.type is StreamType.AUDIO), None)

    @property
    def cover(self) -> Stream | None:
        return next(
            (s for s in self.streams if s.type is StreamType.VIDEO and s.attached_pic), None
        )

    def to_result(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["streams"] = [{**s, "type": s["type"].value} for s in data["streams"]]
        return data

    @classmethod
    def from_result(cls, data: Mapping[str, Any]) -> ProbeInfo:
        streams = tuple(
            Stream(**{**s, "type": StreamType(s["type"])}) for s in data.get("streams", ())
        )
        return cls(data.get("container", ""), data.get("duration"), data.get("bit_rate"), streams)


def route(info: ProbeInfo) -> Kind | None:
    """By content: a real video stream makes video; else an audio stream makes audio."""
    if info.video is not None:
        return Kind.VIDEO
    if info.audio is not None:
        return Kind.AUDIO
    return None


# -- parsers ----------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number >= 0 else None  # not NaN


def _ratio(text: str) -> float:
    m = re.fullmatch(r"(\d+):(\d+)", text or "")
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        return 1.0
    return int(m.group(1)) / int(m.group(2))


def normalize_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


def parse_ffprobe(data: Mapping[str, Any]) -> ProbeInfo:
    """From `ffprobe -print_format json -show_format -show_streams`."""
    fmt = data.get("format") or {}
    streams: list[Stream] = []
    for s in data.get("streams") or []:
        kind = s.get("codec_type")
        if kind not in ("video", "audio"):
            continue
        rotation = 0.0
        for side in s.get("side_data_list") or []:
            if "rotation" in side:
                rotation = float(side["rotation"])
        if not rotation and (s.get("tags") or {}).get("rotate"):
            rotation = _number(s["tags"]["rotate"]) or 0.0
        streams.append(
            Stream(
                index=int(s.get("index", len(streams))),
                type=StreamType(kind),
                codec=str(s.get("codec_name", "")),
                width=int(s.get("width") or 0),
                height=int(s.get("height") or 0),
                pix_fmt=str(s.get("pix_fmt", "")),
                rotation=normalize_rotation(rotation),
                sar=_ratio(s.get("sample_aspect_ratio", "")),
                attached_pic=bool((s.get("disposition") or {}).get("attached_pic")),
                channels=int(s.get("channels") or 0),
                sample_rate=int(_number(s.get("sample_rate")) or 0),
            )
        )
    duration = _number(fmt.get("duration"))
    if duration is None:
        durations = [_number(s.get("duration")) for s in data.get("streams") or []]
        duration = max((d for d in durations if d), default=None)
    bit_rate = _number(fmt.get("bit_rate"))
    return ProbeInfo(
        str(fmt.get("format_name", "")),
        duration,
        int(bit_rate) if bit_rate is not None else None,
        tuple(streams),
    )


_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def parse_ffmpeg_banner(text: str) -> ProbeInfo | None:
    """From the stderr of `ffmpeg -i FILE` (the fallback when there is no ffprobe)."""
    m = re.search(r"^Input #0, (\S+?), from ", text, re.M)
    if not m:
        return None
    container = m.group(1)
    section = text[m.end() :]
    end = re.search(r"^(Output #|At least one output|Stream mapping)", section, re.M)
    section = section[: end.start()] if end else section
    duration = None
    if d := re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", section):
        duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    bit_rate = None
    if b := re.search(r"bitrate: (\d+) kb/s", section):
        bit_rate = int(b.group(1)) * 1000
    streams: list[Stream] = []
    blocks = re.split(r"^\s*Stream #0:", section, flags=re.M)[1:]
    for block in blocks:
        head, _, rest = block.partition("\n")
        sm = re.match(r"(\d+)\S*: (Video|Audio): (\w+)", head)
        if not sm:
            continue
        index, kind, codec = int(sm.group(1)), sm.group(2).lower(), sm.group(3)
        stream: dict[str, Any] = {"index": index, "type": StreamType(kind), "codec": codec}
        if kind == "video":
            if size := re.search(r", (\d{1,5})x(\d{1,5})", head):
                stream["width"], stream["height"] = int(size.group(1)), int(size.group(2))
            if pf := re.match(r"[^,]*\), (\w+)|[^,]*, (\w+)", head[sm.end() :]):
                stream["pix_fmt"] = pf.group(1) or pf.group(2) or ""
            if sar := re.search(r"\[SAR (\d+:\d+)", head):
                stream["sar"] = _ratio(sar.group(1))
            stream["attached_pic"] = "(attached pic)" in head
            if rot := re.search(r"rotation of (-?[\d.]+) degrees", rest.split("Stream #")[0]):
                stream["rotation"] = normalize_rotation(float(rot.group(1)))
        else:
            if hz := re.search(r", (\d+) Hz", head):
                stream["sample_rate"] = int(hz.group(1))
            if ch := re.search(r" Hz, ([\w.]+)(?:\(\w+\))?(?: channels)?", head):
                word = ch.group(1)
                stream["channels"] = int(word) if word.isdigit() else _CHANNELS.get(word, 2)
        streams.append(Stream(**stream))
    return ProbeInfo(container, duration, bit_rate, tuple(streams))


def last_error_line(text: str, input_path: str = "") -> str:
    """The last non-empty line, without ffmpeg's "[demuxer @ 0x..] " or "PATH: " prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = re.sub(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*", "", lines[-1])
    if input_path and line.startswith(f"{input_path}: "):
        line = line[len(input_path) + 2 :]
    return line


# -- the worker (runs inside the job runner) ---------------------------------------------------


def _refuse(why: str) -> None:
    print(why, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)


def _run(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run to completion with stdout and stderr in temporary files (never pipes)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=_die_with_parent
        ).returncode
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def _decoded_duration(ffmpeg: str, path: str, progress: Path) -> float | None:
    """Decode the whole file to nowhere and read how far it got (containers without one)."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    argv += ["-progress", str(progress), "-i", path, "-f", "null", "-"]
    _run(argv)
    try:
        return parse_progress(progress.read_text()).out_time_seconds
    except OSError:
        return None


def probe_file(path: Path, *, ffmpeg: str, ffprobe: str | None, progress: Path) -> ProbeInfo:
    """Probe `path`; refuse (exit EXIT_BAD_INPUT with a reason on stderr) what cannot work."""
    name = str(path)
    if path.stat().st_size == 0:
        _refuse("the file is empty (0 bytes)")
    if ffprobe:
        argv = [ffprobe, "-hide_banner", "-v", "error", "-print_format", "json"]
        rc, out, err = _run([*argv, "-show_format", "-show_streams", "-i", name])
        if err.strip():
            sys.stderr.write(err)
        if rc != 0:
            why = last_error_line(err, name) or f"ffprobe exited {rc}"
            if any(marker in err for marker in BAD_INPUT_MARKERS):
                _refuse(f"cannot read it as audio or video: {why}")
            print(f"ffprobe failed: {why}", file=sys.stderr, flush=True)
            raise SystemExit(rc if 0 < rc < 256 else 1)
        info = parse_ffprobe(json.loads(out or "{}"))
    else:
        _, _, err = _run([ffmpeg, "-hide_banner", "-nostdin", "-i", name])
        parsed = parse_ffmpeg_banner(err)
        if parsed is None:
            why = last_error_line(err, name) or "ffmpeg could not open it"
            _refuse(f"cannot read it as audio or video: {why}")
        assert parsed is not None
        info = parsed
    if route(info) is None:
        _refuse("no audio or video stream found")
    if info.duration is None:
        info = dataclasses.replace(info, duration=_decoded_duration(ffmpeg, name, progress))
    return info


def probe_worker(input: Path, out: Path, *, ffmpeg: str, ffprobe: str | None = None) -> dict:
    """The "probe" job: `Command(python="gremlin.media.probe:probe_worker")`."""
    info = probe_file(
        Path(input), ffmpeg=ffmpeg, ffprobe=ffprobe, progress=Path(out).parent / "progress"
    )
    return info.to_result()

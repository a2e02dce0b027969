"""What video and audio share: the probe job, planning renditions, commands, on_done.

A new video or audio media gets one job, "probe". Its on_done records width, height and
duration, routes by content (a real video stream: video; else an audio stream: audio) and
plans the follow-up jobs, one per output file, so one failed rendition is retried alone.
Both types answer for every step, so it does not matter which of them the engine asks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..settings import Settings
from .base import Command, JobView, Kind, PlannedJob
from .ffargs import BUILDERS, max_kbps
from .ffmpeg import Tools, check_ffmpeg, extra_codecs, find_tools
from .probe import ProbeInfo, Stream, route

PROBE = "probe"
WAVEFORM = "waveform"
POSTER = "poster"
POSTER_MAX = 1280  # cover art is scaled into this box
WAVEFORM_SIZE = (1200, 200)

MIME_BY_SUFFIX = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
}
AUDIO_MIMES = {"audio_opus": "audio/webm", "audio_mp3": "audio/mpeg", "audio_aac": "audio/mp4"}


def output_mime(role: str, name: str) -> str:
    """The MIME type of one of our outputs (players need it in <source type=...>)."""
    if role in AUDIO_MIMES:
        return AUDIO_MIMES[role]
    suffix = name[name.rfind(".") :] if "." in name else ""
    return MIME_BY_SUFFIX.get(suffix, "application/octet-stream")


def even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def rendition_size(display: tuple[int, int], rung: int) -> tuple[int, int]:
    """A rung names the short side (360 is 640x360 landscape, 360x640 portrait)."""
    width, height = display
    if width >= height:
        return even(width * rung / height), rung
    return rung, even(height * rung / width)


def rungs_for(display: tuple[int, int], ladder: Sequence[int]) -> list[int]:
    """Ladder rungs never above the source; a source below every rung gets one at its size."""
    short = min(display)
    rungs = [r for r in ladder if r <= short]
    return rungs or [max(2, short // 2 * 2)]


def can_remux(info: ProbeInfo, video: Stream, size: tuple[int, int], rung: int) -> bool:
    """Already web-compatible (H.264 4:2:0 + AAC or silence, in MP4, upright) and no larger."""
    audio = info.audio
    return (
        "mp4" in info.container.split(",")
        and video.codec == "h264"
        and video.pix_fmt in ("yuv420p", "yuvj420p")
        and video.rotation == 0
        and video.sar == 1.0
        and (video.width, video.height) == size
        and (audio is None or audio.codec == "aac")
        and (info.bit_rate is None or info.bit_rate <= max_kbps(rung) * 1500)
    )


def _stream_params(info: ProbeInfo) -> dict[str, Any]:
    audio = info.audio
    return {
        "duration": info.duration,
        "audio_index": audio.index if audio else None,
        "channels": audio.channels if audio else 0,
    }


def video_jobs(info: ProbeInfo, settings: Settings) -> list[PlannedJob]:
    video = info.video
    assert video is not None
    display = video.display_size()
    common = {**_stream_params(info), "video_index": video.index}
    jobs = []
    rungs = rungs_for(display, settings.video_ladder())
    for rung in rungs:
        width, height = rendition_size(display, rung)
        params = {**common, "builder": "h264", "width": width, "height": height}
        params["remux"] = can_remux(info, video, (width, height), rung)
        jobs.append(PlannedJob(f"video_{rung}", {f"video_{rung}": f"video_{rung}.mp4"}, params))
    for codec in extra_codecs(settings):
        for rung in rungs:
            width, height = rendition_size(display, rung)
            params = {**common, "builder": "webm", "codec": codec, "width": width}
            params["height"] = height
            role = f"webm_{codec}_{rung}"
            jobs.append(PlannedJob(role, {role: f"{role}.webm"}, params, blocking=False))
    width, height = rendition_size(display, rungs[-1])
    seek = min(info.duration * 0.1, 3.0) if info.duration else 0.0
    params = {"builder": "poster", "video_index": video.index, "seek": seek}
    jobs.append(
        PlannedJob(POSTER, {POSTER: "poster.jpg"}, {**params, "width": width, "height": height})
    )
    return jobs


def audio_jobs(info: ProbeInfo, tools: Tools) -> list[PlannedJob]:
    common = _stream_params(info)
    jobs = [PlannedJob("audio_opus", {"audio_opus": "audio.webm"}, {**common, "builder": "opus"})]
    if tools.has("libmp3lame"):
        jobs.append(
            PlannedJob("audio_mp3", {"audio_mp3": "audio.mp3"}, {**common, "builder": "mp3"})
        )
    else:
        jobs.append(
            PlannedJob("audio_aac", {"audio_aac": "audio.m4a"}, {**common, "builder": "aac"})
        )
    width, height = WAVEFORM_SIZE
    jobs.append(
        PlannedJob(
            WAVEFORM, {WAVEFORM: "waveform.png"}, {**common, "width": width, "height": height}
        )
    )
    cover = info.cover
    if cover is not None and cover.width and cover.height:
        w, h = cover.display_size()
        scale = min(1.0, POSTER_MAX / max(w, h))
        params = {"builder": "poster", "video_index": cover.index, "seek": 0}
        params.update(width=even(w * scale), height=even(h * scale))
        # Cover art is a nicety: a broken one must not fail the audio.
        jobs.append(PlannedJob(POSTER, {POSTER: "poster.jpg"}, params, blocking=False))
    return jobs


def command(job: JobView, settings: Settings) -> Command:
    tools = find_tools(settings)
    if job.step == PROBE:
        kwargs = {"ffmpeg": tools.ffmpeg, "ffprobe": tools.ffprobe}
        return Command(python="gremlin.media.probe:probe_worker", kwargs=kwargs)
    duration = job.params.get("duration")
    name = next(iter(job.outputs.values()))
    if job.step == WAVEFORM:
        kwargs = {
            "ffmpeg": tools.ffmpeg,
            "audio_index": job.params["audio_index"],
            "name": name,
            "width": job.params["width"],
            "height": job.params["height"],
            "duration": duration,
        }
        return Command(
            python="gremlin.media.waveform:waveform_worker",
            kwargs=kwargs,
            duration_seconds=duration,
        )
    builder = BUILDERS[job.params["builder"]]
    argv = builder(tools.ffmpeg, job.params, name)
    return Command(argv=tuple(argv), duration_seconds=None if job.step == POSTER else duration)


def on_done(
    conn: sqlite3.Connection, job: JobView, result: Mapping[str, Any], settings: Settings
) -> list[PlannedJob]:
    if job.step != PROBE:
        _record_outputs(conn, job)
        return []
    info = ProbeInfo.from_result(result)
    kind = route(info)
    if kind is None:  # the probe worker refuses these; a stale result must not plan nothing
        raise ValueError("no audio or video stream found")
    width = height = None
    if kind is Kind.VIDEO and info.video is not None:
        width, height = info.video.display_size()
    conn.execute(
        "UPDATE media SET kind = ?, width = ?, height = ?, duration = ?, updated_at = ?"
        " WHERE id = ?",
        (kind.value, width, height, info.duration, time.time(), job.media_id),
    )
    if kind is Kind.VIDEO:
        return video_jobs(info, settings)
    return audio_jobs(info, find_tools(settings))


def _record_outputs(conn: sqlite3.Connection, job: JobView) -> None:
    """MIME type, dimensions and duration on the output's file row (the engine inserts it
    before on_done; from the file name alone it would call audio.webm video/webm)."""
    params = job.params
    width, height = params.get("width"), params.get("height")
    duration = None if job.step in (POSTER, WAVEFORM) else params.get("duration")
    for role, name in job.outputs.items():
        conn.execute(
            "UPDATE files SET mime = ?, width = coalesce(?, width), height = coalesce(?, height),"
            " duration = coalesce(?, duration) WHERE media_id = ? AND role = ?",
            (output_mime(role, name), width, height, duration, job.media_id, role),
        )


def ftyp_brands(head: bytes) -> tuple[str, list[str]] | None:
    """(major brand, compatible brands) of an ISO base media file, else None."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[0:4], "big")
    end = min(len(head), size if 16 <= size <= 4096 else 16)
    major = head[8:12].decode("latin-1")
    compat = [head[i : i + 4].decode("latin-1") for i in range(16, end - 3, 4)]
    return major, compat


class AvType:
    """The shared half of VIDEO and AUDIO; each adds name, kind, mimes and sniff."""

    name: str
    kind: Kind
    mimes: Sequence[str]

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        return [PlannedJob(PROBE, {}, {"mime": mime})]

    def command(self, job: JobView, settings: Settings) -> Command:
        return command(job, settings)

    def on_done(
        self, conn: sqlite3.Connection, job: JobView, result: Mapping[str, Any], settings: Settings
    ) -> list[PlannedJob]:
        return on_done(conn, job, result, settings)

    def check(self, settings: Settings) -> None:
        """Start-up check: raises FfmpegError when ffmpeg or an encoder is missing."""
        check_ffmpeg(settings)

    def output_mime(self, role: str, name: str) -> str:
        return output_mime(role, name)

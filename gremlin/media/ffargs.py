"""Pure ffmpeg command-line builders: job params in, argv (with placeholders) out.

Every command reads `{input}`, writes `{out}/<file>`, reports to `-progress {progress}`, never
reads stdin, prints no statistics and logs errors only, so the job log's last line is the reason
a person reads ("Invalid data found when processing input"). Nothing goes to a pipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

X264_PRESET = "veryfast"
X264_CRF = "23"
AUDIO_IN_VIDEO_BITRATE = "128k"
OPUS_BITRATE = "96k"
MP3_QUALITY = "4"  # LAME VBR -V4, about 165 kb/s
AAC_BITRATE = "128k"


def base(ffmpeg: str) -> list[str]:
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-progress",
        "{progress}",
        "-y",
    ]


def max_kbps(height: int) -> int:
    """The video bitrate cap of a rendition (also the bar a source must pass to be remuxed)."""
    return height * 5


def _stereo(params: Mapping[str, Any]) -> list[str]:
    return ["-ac", "2"] if int(params.get("channels") or 0) > 2 else []


def _maps(params: Mapping[str, Any]) -> list[str]:
    maps = ["-map", f"0:{params['video_index']}"]
    if params.get("audio_index") is not None:
        maps += ["-map", f"0:{params['audio_index']}"]
    return maps + ["-sn", "-dn", "-max_muxing_queue_size", "4096"]


def _scale(params: Mapping[str, Any]) -> list[str]:
    # ffmpeg rotates before this filter runs (autorotate), so width/height are as displayed.
    return ["-vf", f"scale={params['width']}:{params['height']},setsar=1,format=yuv420p"]


def h264(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    """H.264/AAC MP4 with the index up front (+faststart), or a remux when params say so."""
    argv = [*base(ffmpeg), "-i", "{input}", *_maps(params)]
    if params.get("remux"):
        return [*argv, "-c", "copy", "-movflags", "+faststart", f"{{out}}/{name}"]
    kbps = max_kbps(int(params["height"]))
    argv += _scale(params)
    argv += ["-c:v", "libx264", "-preset", X264_PRESET, "-crf", X264_CRF, "-profile:v", "high"]
    argv += ["-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k"]
    if params.get("audio_index") is not None:
        argv += ["-c:a", "aac", "-b:a", AUDIO_IN_VIDEO_BITRATE, *_stereo(params)]
    return [*argv, "-movflags", "+faststart", f"{{out}}/{name}"]


def webm(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    """VP9 or AV1 video with Opus audio in WebM."""
    argv = [*base(ffmpeg), "-i", "{input}", *_maps(params), *_scale(params)]
    if params["codec"] == "vp9":
        argv += ["-c:v", "libvpx-vp9", "-crf", "33", "-b:v", "0", "-deadline", "good"]
        argv += ["-cpu-used", "4", "-row-mt", "1"]
    else:
        argv += ["-c:v", "libsvtav1", "-crf", "35", "-preset", "8"]
    if params.get("audio_index") is not None:
        argv += ["-c:a", "libopus", "-b:a", OPUS_BITRATE, *_stereo(params)]
    return [*argv, "-f", "webm", f"{{out}}/{name}"]


def poster(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    """One JPEG frame: early in a video (`seek`), or the embedded cover art of audio."""
    argv = base(ffmpeg)
    seek = float(params.get("seek") or 0)
    if seek > 0:
        argv += ["-ss", f"{seek:.3f}"]
    argv += ["-i", "{input}", "-map", f"0:{params['video_index']}", "-frames:v", "1"]
    argv += ["-vf", f"scale={params['width']}:{params['height']},setsar=1"]
    return [*argv, "-c:v", "mjpeg", "-q:v", "3", "-f", "image2", f"{{out}}/{name}"]


def opus(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    argv = [*base(ffmpeg), "-i", "{input}", "-map", f"0:{params['audio_index']}", "-vn", "-sn"]
    argv += ["-c:a", "libopus", "-b:a", OPUS_BITRATE, *_stereo(params)]
    return [*argv, "-f", "webm", f"{{out}}/{name}"]


def mp3(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    argv = [*base(ffmpeg), "-i", "{input}", "-map", f"0:{params['audio_index']}", "-vn", "-sn"]
    argv += ["-c:a", "libmp3lame", "-q:a", MP3_QUALITY, *_stereo(params), "-id3v2_version", "3"]
    return [*argv, "-f", "mp3", f"{{out}}/{name}"]


def aac(ffmpeg: str, params: Mapping[str, Any], name: str) -> list[str]:
    argv = [*base(ffmpeg), "-i", "{input}", "-map", f"0:{params['audio_index']}", "-vn", "-sn"]
    argv += ["-c:a", "aac", "-b:a", AAC_BITRATE, *_stereo(params)]
    return [*argv, "-movflags", "+faststart", "-f", "ipod", f"{{out}}/{name}"]


def pcm(
    ffmpeg: str, audio_index: int, rate: int, input: str, dest: str, progress: str
) -> list[str]:
    """Decode one audio stream to mono signed 16-bit samples in a file (for the waveform)."""
    argv = [*base(ffmpeg)]
    argv[argv.index("{progress}")] = progress
    argv += ["-i", input, "-map", f"0:{audio_index}", "-vn", "-sn", "-ac", "1"]
    return [*argv, "-ar", str(rate), "-f", "s16le", "-c:a", "pcm_s16le", dest]


BUILDERS = {"h264": h264, "webm": webm, "poster": poster, "opus": opus, "mp3": mp3, "aac": aac}

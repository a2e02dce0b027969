"""The audio media type: MP3, FLAC, WAV, AIFF, M4A/AAC, Ogg (Vorbis, Opus), sniffed by content.

Jobs: "probe" (gremlin.media.probe), then one job per output file, planned by the probe:

    role          file            mime         what
    audio_opus    audio.webm      audio/webm   Opus in WebM, 96 kb/s
    audio_mp3     audio.mp3       audio/mpeg   MP3 (LAME VBR -V4), the fallback for old players
    audio_aac     audio.m4a       audio/mp4    instead of audio_mp3 when ffmpeg has no libmp3lame
    waveform      waveform.png    image/png    1200x200, transparent, drawn from the decoded audio
    poster        poster.jpg      image/jpeg   embedded cover art, when present (non-blocking)

The media row records the duration. Ogg is claimed here and routed by its probe: an Ogg (or a
WebM, MP4 ...) with a real video stream becomes video media (gremlin.media.video), and a video
container holding only audio becomes audio media.
"""

from __future__ import annotations

from .av import AvType, ftyp_brands
from .base import Kind

AUDIO_BRANDS = {"M4A ", "M4B ", "M4P ", "F4A ", "F4B "}


def _mpeg_audio_frame(head: bytes, at: int = 0) -> str | None:
    """An MPEG audio (MP3) or ADTS (AAC) frame header at `at`."""
    if len(head) < at + 4 or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    version = (head[at + 1] >> 3) & 0x3
    layer = (head[at + 1] >> 1) & 0x3
    if version == 1:
        return None
    if layer == 0:  # ADTS: sync is 12 bits, sampling index < 13
        return (
            "audio/aac" if head[at + 1] & 0xF0 == 0xF0 and (head[at + 2] >> 2) & 0xF < 13 else None
        )
    bitrate = head[at + 2] >> 4
    rate = (head[at + 2] >> 2) & 0x3
    return "audio/mpeg" if bitrate not in (0, 15) and rate != 3 else None


def sniff_audio(head: bytes) -> str | None:
    if head[:3] == b"ID3":
        return "audio/mpeg"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head[:4] == b"caff":
        return "audio/x-caf"
    brands = ftyp_brands(head)
    if brands is not None:
        return "audio/mp4" if brands[0] in AUDIO_BRANDS else None
    return _mpeg_audio_frame(head)


class AudioType(AvType):
    name = "audio"
    kind = Kind.AUDIO
    mimes = (
        "audio/mpeg",
        "audio/flac",
        "audio/ogg",
        "audio/wav",
        "audio/aiff",
        "audio/x-caf",
        "audio/mp4",
        "audio/aac",
    )

    def sniff(self, head: bytes) -> str | None:
        return sniff_audio(head)


AUDIO = AudioType()

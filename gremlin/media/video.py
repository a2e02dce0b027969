"""The video media type: MP4/MOV, WebM/Matroska, AVI, MPEG-TS/PS, FLV, 3GP (sniffed by content).

Jobs: "probe" (gremlin.media.probe), then one job per output file, planned by the probe:

    role              file                mime        what
    video_<h>         video_<h>.mp4       video/mp4   H.264/AAC, +faststart; <h> is the short
                                                      side (360 = 640x360, or 360x640 upright)
    webm_vp9_<h>      webm_vp9_<h>.webm   video/webm  VP9/Opus (video_extra_codecs=vp9)
    webm_av1_<h>      webm_av1_<h>.webm   video/webm  AV1/Opus (video_extra_codecs=av1)
    poster            poster.jpg          image/jpeg  a frame early in the clip, largest size

The WebM renditions do not block the media from becoming ready.
Heights come from `video_heights`, never above the source; a source below every rung gets one
rendition at its own size. A source already H.264/AAC MP4, upright and no larger, is remuxed.
Rotation is applied (outputs are upright; their width/height are the displayed ones). The
media row records the displayed width/height and the duration. A file whose probe finds no
video stream (only audio) becomes audio media: see gremlin.media.audio.
"""

from __future__ import annotations

from .av import AvType, ftyp_brands
from .base import Kind

# ISO-BMFF brands that are images (the image type's) or audio-only (the audio type's).
IMAGE_BRANDS = {"avif", "avis", "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"}
IMAGE_BRANDS |= {"jp2 ", "jpm ", "jpx ", "crx "}
AUDIO_BRANDS = {"M4A ", "M4B ", "M4P ", "F4A ", "F4B "}


def sniff_video(head: bytes) -> str | None:
    brands = ftyp_brands(head)
    if brands is not None:
        major, compat = brands
        if {major, *compat} & IMAGE_BRANDS or major in AUDIO_BRANDS:
            return None
        return "video/quicktime" if major == "qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:3] == b"FLV":
        return "video/x-flv"
    if head[:4] == b"\x00\x00\x01\xba":
        return "video/mpeg"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "video/mp2t"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip") and head[:2] == b"\x00\x00":
        return "video/quicktime"  # old QuickTime without ftyp
    return None


class VideoType(AvType):
    name = "video"
    kind = Kind.VIDEO
    mimes = (
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/x-flv",
        "video/mpeg",
        "video/mp2t",
    )

    def sniff(self, head: bytes) -> str | None:
        return sniff_video(head)


VIDEO = VideoType()

"""Pure parts of the video/audio types: finding ffmpeg, the encoder check, command lines, the
progress parser, probe parsers, sniffing and planning."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from gremlin.media import ffargs
from gremlin.media.audio import AUDIO, sniff_audio
from gremlin.media.av import can_remux, rendition_size, rungs_for, video_jobs
from gremlin.media.ffmpeg import (
    FfmpegError,
    _tools,
    check_ffmpeg,
    parse_encoders,
    parse_progress,
    progress_fraction,
    status,
)
from gremlin.media.image import IMAGE
from gremlin.media.probe import (
    ProbeInfo,
    Stream,
    StreamType,
    last_error_line,
    parse_ffmpeg_banner,
    parse_ffprobe,
    route,
)
from gremlin.media.video import VIDEO, sniff_video
from gremlin.settings import Settings

ENCODERS_TEXT = """Encoders:
 V..... = Video
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 VFS..D mjpeg                MJPEG (Motion JPEG)
 A....D aac                  AAC (Advanced Audio Coding)
 A....D libopus              libopus Opus (codec opus)
 S..... srt                  SubRip subtitle
"""


def _shim(tmp_path: Path, encoders: str) -> Path:
    """A fake ffmpeg that answers -version and -encoders only."""
    listing = tmp_path / "encoders.txt"
    listing.write_text(encoders)
    shim = tmp_path / "ffmpeg"
    shim.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-version*) echo "ffmpeg version 9.9-shim";; '
        f'*-encoders*) cat "{listing}";; *) exit 1;; esac\n'
    )
    shim.chmod(0o755)
    return shim


def test_parse_encoders() -> None:
    assert parse_encoders(ENCODERS_TEXT) == {"libx264", "mjpeg", "aac", "libopus", "srt"}


def test_missing_encoder_is_named_with_the_ffmpeg_used(tmp_path: Path) -> None:
    shim = _shim(tmp_path, ENCODERS_TEXT.replace(" A....D libopus", " A....D libvorbis"))
    settings = Settings(ffmpeg_path=str(shim))
    with pytest.raises(FfmpegError) as caught:
        check_ffmpeg(settings)
    message = caught.value.message
    assert "no encoder libopus" in message and "Opus audio" in message
    assert str(shim) in message and "9.9-shim" in message
    assert "ffmpeg_path" in (caught.value.hint or "")
    # libmp3lame is optional: aac stands in for it, so only libopus is reported
    assert "libmp3lame" not in message
    assert status(settings)["missing"] == ["libopus"]


def test_extra_codecs_need_their_encoders(tmp_path: Path) -> None:
    shim = _shim(tmp_path, ENCODERS_TEXT)
    assert check_ffmpeg(Settings(ffmpeg_path=str(shim))).ffmpeg == str(shim)
    with pytest.raises(FfmpegError, match="no encoder libvpx-vp9, needed for VP9"):
        check_ffmpeg(Settings(ffmpeg_path=str(shim), video_extra_codecs="vp9"))


def test_ffmpeg_path_that_does_not_exist(tmp_path: Path) -> None:
    settings = Settings(ffmpeg_path=str(tmp_path / "nope"))
    with pytest.raises(FfmpegError, match="is not an executable file"):
        check_ffmpeg(settings)
    assert "not an executable" in str(status(settings)["error"])


def test_falls_back_to_imageio_ffmpeg_without_ffprobe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg, no ffprobe
    _tools.cache_clear()
    try:
        tools = check_ffmpeg(Settings(video_extra_codecs="vp9,av1"))
    finally:
        _tools.cache_clear()
    assert tools.source == "imageio-ffmpeg"
    assert tools.ffprobe is None
    assert os.access(tools.ffmpeg, os.X_OK)


def test_progress_parser_counts_complete_blocks_only() -> None:
    text = (
        "frame=10\nout_time_us=400000\nout_time=00:00:00.400000\nprogress=continue\n"
        "frame=20\nout_time_us=800000\nprogress=continue\n"
        "frame=30\nout_time_us=1200"  # being written
    )
    parsed = parse_progress(text)
    assert (parsed.out_time_seconds, parsed.blocks, parsed.ended) == (0.8, 2, False)
    assert progress_fraction(text, 2.0) == pytest.approx(0.4)
    assert progress_fraction(text, None) is None
    assert progress_fraction(text + "000\nprogress=end\n", 2.0) == 1.0
    assert (
        parse_progress("out_time_us=N/A\nout_time=01:02:03.5\nprogress=continue\n").out_time_seconds
        == 3723.5
    )
    assert parse_progress("out_time_us=-5\nprogress=continue\n").out_time_seconds is None
    assert progress_fraction("out_time_us=9000000\nprogress=continue\n", 2.0) == 1.0


def _params(**over: object) -> dict[str, object]:
    base = {"video_index": 0, "audio_index": 1, "width": 640, "height": 360, "channels": 6}
    return {**base, "duration": 10.0, **over}


def test_every_command_writes_progress_to_a_file_and_logs_errors_only() -> None:
    for name, builder in ffargs.BUILDERS.items():
        params = _params(codec="vp9", seek=1.5)
        argv = builder("/usr/bin/ffmpeg", params, f"x.{name}")
        assert argv[0] == "/usr/bin/ffmpeg"
        assert argv[argv.index("-progress") + 1] == "{progress}"
        assert argv[argv.index("-loglevel") + 1] == "error"
        assert {"-nostdin", "-nostats", "-y"} <= set(argv)
        assert argv[argv.index("-i") + 1] == "{input}"
        assert argv[-1] == f"{{out}}/x.{name}"
        assert "-" not in argv and not any(a.startswith("pipe:") for a in argv)


def test_h264_command_line() -> None:
    argv = ffargs.h264("ffmpeg", _params(), "video_360.mp4")
    joined = " ".join(argv)
    assert "-map 0:0 -map 0:1" in joined
    assert "scale=640:360,setsar=1,format=yuv420p" in joined
    assert "-c:v libx264" in joined and "-c:a aac" in joined and "-ac 2" in joined
    assert "-movflags +faststart" in joined
    no_audio = ffargs.h264("ffmpeg", _params(audio_index=None), "v.mp4")
    assert "-c:a" not in no_audio and "0:None" not in " ".join(no_audio)
    remux = ffargs.h264("ffmpeg", _params(remux=True), "v.mp4")
    assert remux[remux.index("-c") + 1] == "copy" and "libx264" not in remux
    assert "+faststart" in remux


def test_poster_seeks_before_input_and_stereo_only_when_needed() -> None:
    argv = ffargs.poster("ffmpeg", _params(seek=1.25), "poster.jpg")
    assert argv.index("-ss") < argv.index("-i") and "1.250" in argv
    assert "-ss" not in ffargs.poster("ffmpeg", _params(seek=0), "poster.jpg")
    assert "-ac" not in ffargs.opus("ffmpeg", _params(channels=2), "a.webm")


def test_rungs_and_sizes() -> None:
    assert rungs_for((1920, 1080), (360, 720, 1080)) == [360, 720, 1080]
    assert rungs_for((1280, 720), (360, 720, 1080)) == [360, 720]
    assert rungs_for((320, 241), (360, 720)) == [240]  # below every rung: its own (even) size
    assert rendition_size((1920, 1080), 360) == (640, 360)
    assert rendition_size((1080, 1920), 360) == (360, 640)  # portrait: the short side
    assert rendition_size((720, 404), 240) == (428, 240)  # even widths


def _video(**over: object) -> ProbeInfo:
    video = Stream(0, StreamType.VIDEO, "h264", 1280, 720, "yuv420p")
    audio = Stream(1, StreamType.AUDIO, "aac", channels=2)
    streams = (dataclasses.replace(video, **over), audio)  # type: ignore[arg-type]
    return ProbeInfo("mov,mp4,m4a,3gp,3g2,mj2", 30.0, 2_500_000, streams)


def test_remux_only_when_web_compatible_and_no_larger() -> None:
    info = _video()
    assert info.video is not None
    assert can_remux(info, info.video, (1280, 720), 720)
    assert not can_remux(info, info.video, (640, 360), 360)
    for over in ({"codec": "hevc"}, {"pix_fmt": "yuv444p"}, {"rotation": 90}):
        other = _video(**over)
        assert other.video is not None and not can_remux(other, other.video, (1280, 720), 720)
    fat = dataclasses.replace(info, bit_rate=40_000_000)
    assert not can_remux(fat, info.video, (1280, 720), 720)
    mkv = dataclasses.replace(info, container="matroska,webm")
    assert not can_remux(mkv, info.video, (1280, 720), 720)


def test_video_plan_one_job_per_output() -> None:
    settings = Settings(video_heights="360,720,1080", video_extra_codecs="av1")
    jobs = video_jobs(_video(), settings)
    assert [j.step for j in jobs] == [
        "video_360", "video_720", "webm_av1_360", "webm_av1_720", "poster",
    ]  # fmt: skip
    by_step = {j.step: j for j in jobs}
    assert by_step["video_720"].params["remux"] is True
    assert by_step["video_360"].params["remux"] is False
    assert by_step["video_360"].outputs == {"video_360": "video_360.mp4"}
    assert by_step["webm_av1_720"].blocking is False and by_step["video_720"].blocking
    assert by_step["poster"].params["seek"] == 3.0
    assert (by_step["poster"].params["width"], by_step["poster"].params["height"]) == (1280, 720)


FFPROBE_JSON = {
    "streams": [
        {
            "index": 0,
            "codec_name": "hevc",
            "codec_type": "video",
            "width": 1920,
            "height": 1080,
            "pix_fmt": "yuv420p10le",
            "sample_aspect_ratio": "1:1",
            "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}],
            "disposition": {"attached_pic": 0},
        },
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "channels": 2,
         "sample_rate": "48000"},
        {"index": 2, "codec_type": "data", "codec_name": "bin_data"},
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5", "bit_rate": "9000"},
}  # fmt: skip


def test_parse_ffprobe_json() -> None:
    info = parse_ffprobe(FFPROBE_JSON)
    assert info.video is not None and info.audio is not None
    assert info.video.rotation == 270 and info.video.display_size() == (1080, 1920)
    assert (info.audio.index, info.audio.sample_rate, info.duration) == (1, 48000, 12.5)
    assert len(info.streams) == 2 and route(info).value == "video"  # type: ignore[union-attr]
    assert ProbeInfo.from_result(info.to_result()) == info
    assert route(parse_ffprobe({"streams": [], "format": {}})) is None


BANNER = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mp4':
  Metadata:
    major_brand     : isom
  Duration: 00:01:02.50, start: 0.000000, bitrate: 1208 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1440x1080 [SAR 4:3 DAR 16:9], 1100 kb/s, 30 fps (default)
    Metadata:
      handler_name    : VideoHandler
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, 5.1(side), fltp, 96 kb/s (default)
  Stream #0:2: Video: mjpeg (Baseline), yuvj420p(pc), 300x300 [SAR 1:1 DAR 1:1], 90k tbr (attached pic)
At least one output file must be specified
"""  # noqa: E501


def test_parse_ffmpeg_banner() -> None:
    info = parse_ffmpeg_banner(BANNER)
    assert info is not None and info.video is not None and info.audio is not None
    assert (info.container, info.duration, info.bit_rate) == (
        "mov,mp4,m4a,3gp,3g2,mj2", 62.5, 1_208_000,
    )  # fmt: skip
    assert (info.video.codec, info.video.pix_fmt, info.video.rotation) == ("h264", "yuv420p", 270)
    assert info.video.display_size() == (1080, 1920)  # SAR 4:3 widens 1440 to 1920, then turns
    assert (info.audio.channels, info.audio.sample_rate) == (6, 48000)
    assert info.cover is not None and info.cover.index == 2
    assert parse_ffmpeg_banner("x.mp4: Invalid data found when processing input\n") is None


def test_last_error_line_drops_prefixes() -> None:
    text = (
        "[mov,mp4 @ 0x55d1] moov atom not found\n/q/x: Invalid data found when processing input\n"
    )
    assert last_error_line(text, "/q/x") == "Invalid data found when processing input"
    assert last_error_line("[mov,mp4 @ 0x55d1] moov atom not found\n") == "moov atom not found"


def _ftyp(major: bytes, *compat: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compat)
    return (len(body) + 8).to_bytes(4, "big") + b"ftyp" + body + b"\0" * 64


HEADS = {
    "mp4": (_ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "video", "video/mp4"),
    "mov": (_ftyp(b"qt  ", b"qt  "), "video", "video/quicktime"),
    "m4v": (_ftyp(b"M4V ", b"M4V ", b"mp42"), "video", "video/mp4"),
    "m4a": (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio", "audio/mp4"),
    "webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\0" * 64, "video",
             "video/webm"),
    "mkv": (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska" + b"\0" * 64, "video",
            "video/x-matroska"),
    "avi": (b"RIFF\0\0\0\0AVI LIST" + b"\0" * 64, "video", "video/x-msvideo"),
    "ogg": (b"OggS\0\x02" + b"\0" * 64, "audio", "audio/ogg"),
    "id3": (b"ID3\x04\0\0\0\0\0\0" + b"\0" * 64, "audio", "audio/mpeg"),
    "mp3": (b"\xff\xfb\x90\x64" + b"\0" * 64, "audio", "audio/mpeg"),
    "adts": (b"\xff\xf1\x50\x80" + b"\0" * 64, "audio", "audio/aac"),
    "flac": (b"fLaC\0\0\0\x22" + b"\0" * 64, "audio", "audio/flac"),
    "wav": (b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 64, "audio", "audio/wav"),
    "heic": (_ftyp(b"heic", b"mif1", b"heic"), "image", "image/heic"),
    "avif": (_ftyp(b"avif", b"mif1", b"miaf"), "image", "image/avif"),
    "mif1": (_ftyp(b"mif1", b"heic"), "image", "image/heic"),
    "jpeg": (b"\xff\xd8\xff\xe0" + b"\0" * 64, "image", "image/jpeg"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HEADS))
def test_sniffing_claims_each_input_exactly_once(name: str) -> None:
    head, owner, mime = HEADS[name]
    claims = {t.name: m for t in (IMAGE, VIDEO, AUDIO) if (m := t.sniff(head))}
    assert claims == {owner: mime}


def test_text_and_empty_input_are_not_claimed() -> None:
    for head in (b"", b"hello, this is text\n" * 20, b"\xff\xff\xff\xff" * 16):
        assert sniff_video(head) is None and sniff_audio(head) is None


def test_each_mime_is_claimed_by_one_type() -> None:
    mimes = [m for t in (IMAGE, VIDEO, AUDIO) for m in t.mimes]
    assert len(mimes) == len(set(mimes))

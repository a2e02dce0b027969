"""The video type with real ffmpeg on tiny generated clips (each job run as a real process)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gremlin.media.base import EXIT_BAD_INPUT
from gremlin.media.probe import ProbeInfo, _decoded_duration, parse_ffmpeg_banner, probe_file
from gremlin.media.registry import load_media_types, sniff
from gremlin.media.video import VIDEO
from gremlin.settings import Settings

from .avtools import FFMPEG, drive, make_clip, probe, rotate, streams

pytestmark = pytest.mark.slow

MKV_MPEG4 = ("-c:v", "mpeg4", "-q:v", "5")


def _mp4_moov_first(path: Path) -> bool:
    data = path.read_bytes()
    return data.index(b"moov") < data.index(b"mdat")


def test_ladder_never_above_source_h264_aac_faststart_and_poster(
    tmp_path: Path, settings: Settings
) -> None:
    clip = make_clip(tmp_path / "in.mkv", size="320x180", seconds=1, vcodec=MKV_MPEG4)
    settings = dataclasses.replace(settings, video_heights="90,144,720")
    outcome = drive(VIDEO, clip, settings)

    assert sorted(outcome.files) == ["poster", "video_144", "video_90"]
    for rung, width in ((90, 160), (144, 256)):
        path = outcome.files[f"video_{rung}"]
        [v] = streams(path, "video")
        [a] = streams(path, "audio")
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", width, rung)
        assert v["pix_fmt"] == "yuv420p" and a["codec_name"] == "aac"
        assert float(probe(path)["format"]["duration"]) == pytest.approx(1.0, abs=0.15)
        assert _mp4_moov_first(path)
        assert "-c" not in outcome.ran[f"video_{rung}"].command.argv  # transcoded, not copied
    [p] = streams(outcome.files["poster"], "video")
    assert (p["codec_name"], p["width"], p["height"]) == ("mjpeg", 256, 144)
    assert outcome.media["kind"] == "video"
    assert (outcome.media["width"], outcome.media["height"]) == (320, 180)
    assert outcome.media["duration"] == pytest.approx(1.0, abs=0.1)


def test_web_compatible_small_source_is_remuxed_with_faststart(
    tmp_path: Path, settings: Settings
) -> None:
    clip = make_clip(tmp_path / "in.mp4", size="320x180", seconds=1)
    assert not _mp4_moov_first(clip)
    settings = dataclasses.replace(settings, video_heights="180,360")
    outcome = drive(VIDEO, clip, settings)
    assert sorted(outcome.files) == ["poster", "video_180"]
    argv = outcome.ran["video_180"].command.argv
    assert argv[argv.index("-c") + 1] == "copy"
    out = outcome.files["video_180"]
    assert _mp4_moov_first(out)
    [v] = streams(out, "video")
    assert (v["width"], v["height"]) == (320, 180)


def test_source_below_every_rung_gets_one_rendition_at_its_size(
    tmp_path: Path, settings: Settings
) -> None:
    clip = make_clip(tmp_path / "in.avi", size="160x90", seconds=1, vcodec=MKV_MPEG4)
    outcome = drive(VIDEO, clip, settings)  # default ladder 360,720,1080
    assert sorted(outcome.files) == ["poster", "video_90"]
    [v] = streams(outcome.files["video_90"], "video")
    assert (v["width"], v["height"]) == (160, 90)


def test_rotated_phone_clip_comes_out_upright(tmp_path: Path, settings: Settings) -> None:
    plain = make_clip(tmp_path / "plain.mp4", size="320x180", seconds=1)
    clip = rotate(plain, tmp_path / "phone.mp4", 90)
    [raw] = streams(clip, "video")
    assert (raw["width"], raw["height"]) == (320, 180)  # stored sideways, displayed upright
    settings = dataclasses.replace(settings, video_heights="144,720")
    outcome = drive(VIDEO, clip, settings)

    assert (outcome.media["width"], outcome.media["height"]) == (180, 320)
    [v] = streams(outcome.files["video_144"], "video")
    assert (v["width"], v["height"]) == (144, 256)
    assert not [s for s in v.get("side_data_list", []) if s.get("rotation")]
    [p] = streams(outcome.files["poster"], "video")
    assert (p["width"], p["height"]) == (144, 256)


def test_static_imageio_ffmpeg_runs_the_whole_ladder(tmp_path: Path, settings: Settings) -> None:
    static = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    plain = make_clip(tmp_path / "plain.mkv", size="320x180", vcodec=MKV_MPEG4)
    clip = rotate(plain, tmp_path / "phone.mkv", 90, tool=static)
    settings = dataclasses.replace(settings, video_heights="90,144", ffmpeg_path=static)
    outcome = drive(VIDEO, clip, settings)
    assert sorted(outcome.files) == ["poster", "video_144", "video_90"]
    for rung, height in ((90, 160), (144, 256)):
        [v] = streams(outcome.files[f"video_{rung}"], "video")
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", rung, height)
    assert (outcome.media["width"], outcome.media["height"]) == (180, 320)


def test_video_without_audio(tmp_path: Path, settings: Settings) -> None:
    clip = make_clip(tmp_path / "in.mkv", size="320x180", audio=False, vcodec=MKV_MPEG4)
    settings = dataclasses.replace(settings, video_heights="90")
    outcome = drive(VIDEO, clip, settings)
    assert sorted(outcome.files) == ["poster", "video_90"]
    assert streams(outcome.files["video_90"], "audio") == []
    assert len(streams(outcome.files["video_90"], "video")) == 1


def test_vp9_extra_rendition(tmp_path: Path, settings: Settings) -> None:
    clip = make_clip(tmp_path / "in.mp4", size="160x90", seconds=0.5)
    settings = dataclasses.replace(settings, video_heights="90", video_extra_codecs="vp9")
    outcome = drive(VIDEO, clip, settings)
    assert outcome.planned["webm_vp9_90"].blocking is False
    [v] = streams(outcome.files["webm_vp9_90"], "video")
    [a] = streams(outcome.files["webm_vp9_90"], "audio")
    assert (v["codec_name"], v["height"], a["codec_name"]) == ("vp9", 90, "opus")


def test_video_container_with_only_audio_becomes_audio(tmp_path: Path, settings: Settings) -> None:
    clip = make_clip(tmp_path / "in.mkv", video=False, acodec=("-c:a", "libvorbis"))
    types = load_media_types(settings)
    media_type, mime = sniff(clip.read_bytes()[:8192], types)
    assert media_type.name == "video"
    outcome = drive(media_type, clip, settings, mime)
    assert outcome.media["kind"] == "audio"
    assert sorted(outcome.files) == ["audio_mp3", "audio_opus", "waveform"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.mp4", b"", "the file is empty (0 bytes)"),
        ("notes.mp4", b"hello, this is text\n" * 50, "Invalid data found when processing input"),
    ],
)
def test_bad_inputs_fail_without_retry_and_say_why(
    tmp_path: Path, settings: Settings, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    outcome = drive(VIDEO, path, settings)
    ran = outcome.ran["probe"]
    assert ran.code == EXIT_BAD_INPUT
    assert reason in ran.last_line
    assert str(path) not in ran.last_line  # the reason, not a path
    assert outcome.files == {}


def test_truncated_file_fails_with_a_reason(tmp_path: Path, settings: Settings) -> None:
    clip = make_clip(tmp_path / "full.mp4", size="320x180", seconds=1)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    outcome = drive(VIDEO, cut, settings)
    ran = outcome.ran["probe"]
    assert ran.code == EXIT_BAD_INPUT
    assert ran.last_line.startswith("cannot read it as audio or video: ")
    assert "Invalid data found when processing input" in ran.last_line


def test_probe_without_ffprobe_matches_ffprobe(tmp_path: Path) -> None:
    plain = make_clip(tmp_path / "plain.mp4", size="320x180", seconds=1)
    clip = rotate(plain, tmp_path / "phone.mp4", 90)
    progress = tmp_path / "progress"
    with_ffprobe = probe_file(clip, ffmpeg=FFMPEG, ffprobe="ffprobe", progress=progress)
    without = probe_file(clip, ffmpeg=FFMPEG, ffprobe=None, progress=progress)
    assert without.video is not None and with_ffprobe.video is not None
    assert without.video.display_size() == with_ffprobe.video.display_size() == (180, 320)
    assert without.audio is not None and without.audio.codec == "aac"
    assert without.duration == pytest.approx(with_ffprobe.duration or 0, abs=0.05)


def test_probe_with_static_imageio_ffmpeg(tmp_path: Path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    static = imageio_ffmpeg.get_ffmpeg_exe()
    clip = make_clip(tmp_path / "in.mp4", size="320x180", seconds=1)
    info = probe_file(clip, ffmpeg=static, ffprobe=None, progress=tmp_path / "progress")
    assert info.video is not None and info.video.display_size() == (320, 180)
    assert info.audio is not None and info.duration == pytest.approx(1.0, abs=0.1)


def test_duration_from_decoding_when_the_container_has_none(tmp_path: Path) -> None:
    banner = (
        "Input #0, mpegts, from 'x.ts':\n  Duration: N/A, start: 1.4, bitrate: N/A\n"
        "  Stream #0:0[0x100]: Audio: mp2, 44100 Hz, mono, s16p, 64 kb/s\n"
    )
    info = parse_ffmpeg_banner(banner)
    assert isinstance(info, ProbeInfo) and info.duration is None
    clip = make_clip(tmp_path / "in.ts", video=False, seconds=1, acodec=("-c:a", "mp2"))
    assert _decoded_duration(FFMPEG, str(clip), tmp_path / "progress") == pytest.approx(
        1.0, abs=0.1
    )

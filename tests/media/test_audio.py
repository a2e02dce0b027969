"""The audio type with real ffmpeg on tiny generated clips (each job run as a real process)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from gremlin.media.audio import AUDIO
from gremlin.media.av import audio_jobs
from gremlin.media.ffmpeg import Tools
from gremlin.media.probe import ProbeInfo, Stream, StreamType
from gremlin.media.registry import load_media_types, sniff
from gremlin.media.waveform import draw, peaks
from gremlin.settings import Settings

from .avtools import drive, ffmpeg, make_clip, probe, streams


def _with_cover(tmp_path: Path) -> Path:
    path = tmp_path / "song.mp3"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=1",
        "-f", "lavfi", "-i", "testsrc=size=96x64:duration=1",
        "-map", "0", "-map", "1", "-frames:v", "1", "-c:v", "png",
        "-disposition:v", "attached_pic", "-c:a", "libmp3lame", str(path),
    )  # fmt: skip
    return path


@pytest.mark.slow
def test_mp3_with_cover_art_gets_opus_mp3_waveform_and_poster(
    tmp_path: Path, settings: Settings
) -> None:
    song = _with_cover(tmp_path)
    media_type, mime = sniff(song.read_bytes()[:8192], load_media_types(settings))
    assert (media_type.name, mime) == ("audio", "audio/mpeg")
    outcome = drive(AUDIO, song, settings, mime)

    assert sorted(outcome.files) == ["audio_mp3", "audio_opus", "poster", "waveform"]
    [opus] = streams(outcome.files["audio_opus"], "audio")
    assert opus["codec_name"] == "opus"
    assert probe(outcome.files["audio_opus"])["format"]["format_name"].startswith("matroska,webm")
    assert streams(outcome.files["audio_opus"], "video") == []  # no cover art inside
    [mp3] = streams(outcome.files["audio_mp3"], "audio")
    assert mp3["codec_name"] == "mp3"
    for role in ("audio_opus", "audio_mp3"):
        duration = float(probe(outcome.files[role])["format"]["duration"])
        assert duration == pytest.approx(1.0, abs=0.15)
    with Image.open(outcome.files["waveform"]) as image:
        assert (image.format, image.size) == ("PNG", (1200, 200))
        assert image.getbbox() is not None  # something was drawn
    [poster] = streams(outcome.files["poster"], "video")
    assert (poster["codec_name"], poster["width"], poster["height"]) == ("mjpeg", 96, 64)
    assert outcome.planned["poster"].blocking is False
    assert outcome.media["kind"] == "audio"
    assert outcome.media["duration"] == pytest.approx(1.0, abs=0.1)
    assert outcome.media["width"] is None


@pytest.mark.slow
def test_wav_without_cover_has_no_poster(tmp_path: Path, settings: Settings) -> None:
    wav = make_clip(tmp_path / "a.wav", video=False, seconds=1, acodec=("-c:a", "pcm_s16le"))
    outcome = drive(AUDIO, wav, settings)
    assert sorted(outcome.files) == ["audio_mp3", "audio_opus", "waveform"]


@pytest.mark.slow
def test_ogg_with_theora_video_becomes_video(tmp_path: Path, settings: Settings) -> None:
    clip = make_clip(
        tmp_path / "in.ogv", size="160x90", seconds=0.5,
        vcodec=("-c:v", "libtheora"), acodec=("-c:a", "libvorbis"),
    )  # fmt: skip
    media_type, mime = sniff(clip.read_bytes()[:8192], load_media_types(settings))
    assert (media_type.name, mime) == ("audio", "audio/ogg")
    settings = dataclasses.replace(settings, video_heights="90")
    outcome = drive(media_type, clip, settings, mime)
    assert outcome.media["kind"] == "video"
    assert sorted(outcome.files) == ["poster", "video_90"]


@pytest.mark.slow
def test_stereo_5_1_is_downmixed_for_opus(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "surround.flac"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=0.5",
        "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
        "-c:a", "flac", str(path),
    )  # fmt: skip
    outcome = drive(AUDIO, path, settings)
    [opus] = streams(outcome.files["audio_opus"], "audio")
    assert opus["channels"] == 2


def _info(cover: bool = False) -> ProbeInfo:
    streams = [Stream(0, StreamType.AUDIO, "flac", channels=2, sample_rate=44100)]
    if cover:
        streams.append(Stream(1, StreamType.VIDEO, "mjpeg", 3000, 2000, attached_pic=True))
    return ProbeInfo("flac", 12.5, 900_000, tuple(streams))


def test_aac_fallback_when_ffmpeg_has_no_lame() -> None:
    tools = Tools("ffmpeg", None, "x", frozenset({"libx264", "aac", "libopus", "mjpeg"}), "PATH")
    roles = [role for job in audio_jobs(_info(), tools) for role in job.outputs]
    assert roles == ["audio_opus", "audio_aac", "waveform"]
    with_lame = dataclasses.replace(tools, encoders=tools.encoders | {"libmp3lame"})
    roles = [role for job in audio_jobs(_info(), with_lame) for role in job.outputs]
    assert roles == ["audio_opus", "audio_mp3", "waveform"]


def test_cover_poster_is_scaled_into_the_poster_box() -> None:
    tools = Tools("ffmpeg", None, "x", frozenset({"libmp3lame"}), "PATH")
    [poster] = [job for job in audio_jobs(_info(cover=True), tools) if job.step == "poster"]
    assert (poster.params["width"], poster.params["height"]) == (1280, 854)
    assert poster.params["video_index"] == 1


def test_waveform_peaks_and_drawing(tmp_path: Path) -> None:
    import array

    samples = array.array("h", [0] * 100 + [16384, -32768] * 50 + [100] * 100)
    pcm = tmp_path / "pcm"
    pcm.write_bytes(samples.tobytes())
    values = peaks(pcm, 3)
    assert values == [0.0, 1.0, pytest.approx(100 / 32768)]
    assert peaks(pcm, 1) == [1.0]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert peaks(empty, 2) == [0.0, 0.0]
    image = draw(values, 3, 50)
    assert image.size == (3, 50)
    column = [image.getpixel((1, y))[3] for y in range(50)]
    assert sum(1 for a in column if a) >= 45  # the loudest column fills the height
    assert sum(1 for y in range(50) if image.getpixel((2, y))[3]) <= 3  # a quiet one barely

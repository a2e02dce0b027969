"""The image type: sniffing by content, and the derive worker's outputs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from gremlin.media import EXIT_BAD_INPUT, JobView
from gremlin.media.image import IMAGE, OUTPUTS, sniff_image
from gremlin.media.image_worker import derive
from gremlin.settings import Settings

from .images import (
    ALL_FORMATS,
    animated_gif,
    bomb_png,
    camera_jpeg,
    corrupt_jpeg,
    image_bytes,
    write,
)


@pytest.mark.parametrize("mime", sorted(ALL_FORMATS))
def test_each_format_is_sniffed_by_content(mime: str) -> None:
    assert sniff_image(ALL_FORMATS[mime]()[:4096]) == mime


def test_not_images_are_not_claimed() -> None:
    assert sniff_image(b"hello world, this is text named photo.jpg\n") is None
    assert sniff_image(b"") is None
    # An MP4 is an ISO-BMFF file too, but not an image brand: the video type's business.
    assert sniff_image(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\0" * 64) is None


@pytest.mark.parametrize("mime", sorted(ALL_FORMATS))
def test_every_format_derives_thumb_and_medium_within_their_boxes(
    mime: str, tmp_path: Path
) -> None:
    original = write(tmp_path / "in", ALL_FORMATS[mime]())
    result = derive(original, tmp_path / "out", thumb_size=100, medium_size=200)
    assert (result["width"], result["height"]) == (400, 300)
    for role, box in (("thumb", 100), ("medium", 200)):
        with Image.open(tmp_path / "out" / OUTPUTS[role]) as im:
            assert im.format == "WEBP"
            assert max(im.size) == box
            assert im.size == (box, box * 3 // 4)
            assert result["outputs"][role] == {
                "width": im.width,
                "height": im.height,
                "mime": "image/webp",
            }


def test_small_images_are_not_upscaled(tmp_path: Path) -> None:
    original = write(tmp_path / "in.png", image_bytes("PNG", (50, 40)))
    derive(original, tmp_path / "out", thumb_size=100, medium_size=200)
    for name in OUTPUTS.values():
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size == (50, 40)


def test_orientation_applied_metadata_stripped_exif_summary_without_gps(tmp_path: Path) -> None:
    original = write(tmp_path / "in.jpg", camera_jpeg((400, 300), orientation=6))
    result = derive(original, tmp_path / "out", thumb_size=100, medium_size=200)

    with Image.open(tmp_path / "out" / "medium.webp") as im:
        # Orientation 6: the 400x300 landscape is shown rotated 90° clockwise, as 300x400 with
        # its left (red) half on top.
        assert im.size == (150, 200)
        top = im.convert("RGB").getpixel((75, 20))
        bottom = im.convert("RGB").getpixel((75, 180))
        assert top[0] > 150 and top[2] < 100, top
        assert bottom[2] > 150 and bottom[0] < 100, bottom
        assert not im.getexif()
        assert "exif" not in im.info and "icc_profile" not in im.info and "xmp" not in im.info
    for name in OUTPUTS.values():
        data = (tmp_path / "out" / name).read_bytes()
        assert b"Exif" not in data and b"EXIF" not in data and b"Gremlin Camera" not in data
        assert b"ICCP" not in data and b"XMP" not in data

    # The original is recorded as stored: 400x300 pixels with orientation 6.
    assert (result["width"], result["height"]) == (400, 300)
    exif = result["exif"]
    assert exif["make"] == "Gremlin Camera Co" and exif["model"] == "GC-1"
    assert exif["lens_model"] == "GC 35mm f/2.8"
    assert exif["date_taken"] == "2024:05:06 07:08:09"
    assert exif["exposure"] == "1/250" and exif["f_number"] == 2.8
    assert exif["iso"] == 400 and exif["focal_length"] == 35.0
    assert "gps" not in json.dumps(exif).lower() and "52" not in json.dumps(exif)


def test_animated_gif_becomes_a_still_of_its_first_frame(tmp_path: Path) -> None:
    original = write(tmp_path / "in.gif", animated_gif())
    result = derive(original, tmp_path / "out")
    assert result["animated"] is True and result["frames"] == 3
    with Image.open(tmp_path / "out" / "thumb.webp") as im:
        assert not getattr(im, "is_animated", False)


def run_worker(original: Path, out: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gremlin.media.image_worker", "--input", str(original),
         "--out", str(out), "--kwargs", json.dumps(kwargs)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_standalone_worker_writes_result_json(tmp_path: Path) -> None:
    original = write(tmp_path / "in.jpg", camera_jpeg())
    done = run_worker(original, tmp_path / "out", thumb_size=64)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["outputs"]["thumb"]["width"] == 48  # 300x400 upright, in a 64 box


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (corrupt_jpeg(), "cannot decode image: "),
        (b"GIF89a" + b"\xff" * 40, "cannot decode image: "),
        (bomb_png(), "decompression bomb: "),
    ],
    ids=["truncated-jpeg", "garbage-gif", "bomb"],
)
def test_bad_input_exits_65_with_a_clear_message(data: bytes, message: str, tmp_path: Path) -> None:
    original = write(tmp_path / "in", data)
    done = run_worker(original, tmp_path / "out")
    assert done.returncode == EXIT_BAD_INPUT
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "result.json").exists()


def test_max_image_pixels_is_the_bomb_limit(tmp_path: Path) -> None:
    original = write(tmp_path / "in.png", image_bytes("PNG", (400, 300)))
    done = run_worker(original, tmp_path / "out", max_pixels=100_000)
    assert done.returncode == EXIT_BAD_INPUT
    assert "decompression bomb" in done.stderr and "max_image_pixels=100000" in done.stderr


def test_command_and_on_done_contract(tmp_path: Path) -> None:
    settings = Settings(thumb_size=111, medium_size=222, image_quality=50, max_image_pixels=999)
    [job] = IMAGE.plan("m1", "image/png", settings)
    assert job.step == "derive" and dict(job.outputs) == OUTPUTS and job.blocking
    view = JobView(1, "m1", "derive", tmp_path / "in", tmp_path / "out", job.outputs, {}, 1)
    command = IMAGE.command(view, settings)
    assert command.python == "gremlin.media.image_worker:derive" and not command.argv
    assert command.kwargs["thumb_size"] == 111 and command.kwargs["medium_size"] == 222
    assert command.kwargs["quality"] == 50 and command.kwargs["max_pixels"] == 999


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _palette_with_hole() -> Image.Image:
    im = Image.new("P", (300, 200), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 150, 200))  # the left half is index 0: transparent
    return im


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda: _save(Image.new("CMYK", (300, 200), (0, 200, 200, 0)), "JPEG"), "RGB"),
        (lambda: _save(Image.new("I;16", (300, 200), 40000), "PNG"), "RGB"),
        (lambda: _save(Image.new("LA", (300, 200), (128, 100)), "PNG"), "RGBA"),
        (lambda: _save(_palette_with_hole(), "PNG", transparency=0), "RGBA"),
        (lambda: _save(Image.new("RGBA", (300, 200), (1, 2, 3, 4)), "WEBP"), "RGBA"),
        (lambda: _save(Image.new("1", (300, 200), 1), "TIFF"), "RGB"),
    ],
    ids=["cmyk-jpeg", "16bit-png", "la-png", "palette-transparency", "rgba-webp", "1bit-tiff"],
)
def test_unusual_pixel_modes_still_derive(make: Any, mode: str, tmp_path: Path) -> None:
    original = write(tmp_path / "in", make())
    result = derive(original, tmp_path / "out", thumb_size=100, medium_size=200)
    assert (result["width"], result["height"]) == (300, 200)
    with Image.open(tmp_path / "out" / "thumb.webp") as im:
        assert im.size == (100, 67) and im.mode == mode


def test_an_embedded_icc_profile_is_applied_and_not_kept(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = _save(Image.new("RGB", (300, 200), (200, 30, 30)), "JPEG", icc_profile=srgb)
    original = write(tmp_path / "in.jpg", data)
    derive(original, tmp_path / "out")
    with Image.open(tmp_path / "out" / "medium.webp") as im:
        assert "icc_profile" not in im.info
        r, g, b = im.convert("RGB").getpixel((10, 10))
        assert r > 150 and g < 80 and b < 80


def test_heic_with_exif_orientation_is_upright_and_not_rotated_twice(tmp_path: Path) -> None:
    from .images import camera_exif, gradient

    buf = io.BytesIO()
    gradient((400, 300)).save(buf, "HEIF", exif=camera_exif(6).tobytes())
    original = write(tmp_path / "in.heic", buf.getvalue())
    result = derive(original, tmp_path / "out", thumb_size=100, medium_size=200)
    assert result["exif"]["model"] == "GC-1"
    with Image.open(tmp_path / "out" / "medium.webp") as im:
        assert im.size == (150, 200)
        top, bottom = im.convert("RGB").getpixel((75, 20)), im.convert("RGB").getpixel((75, 180))
        assert top[0] > 150 and bottom[2] > 150, (top, bottom)

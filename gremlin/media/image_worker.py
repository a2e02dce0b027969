"""The image "derive" job: decode once, write thumb and medium WebP, report size and EXIF.

Runs inside a job process (the runner calls `derive`), or standalone:

    python -m gremlin.media.image_worker --input ORIGINAL --out DIR [--kwargs JSON]

which writes DIR/result.json. Input that can never work (not decodable, truncated, a
decompression bomb) prints one clear line to stderr and exits EXIT_BAD_INPUT (65): no retry.

Derived files carry no metadata at all (no EXIF, GPS, XMP, comments, ICC profile): pixels are
converted to sRGB first, the orientation is applied to the pixels, then only pixels are saved.
Animated GIF/WebP: the first frame (see docs/media.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import pillow_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .base import EXIT_BAD_INPUT

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "HEIF", "AVIF")
DEFAULT_OUTPUTS = {"thumb": "thumb.webp", "medium": "medium.webp"}
WEBP_METHOD = 2  # 0 (fast) .. 6 (small): 3 and up cost twice the time for ~3% smaller files
PILLOW_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
RESAMPLE = Image.Resampling.BICUBIC  # downscaling only: as sharp as Lanczos here, faster

# EXIF tags of the summary (never GPS): base IFD, then the Exif sub-IFD.
_BASE_TAGS = {0x010F: "make", 0x0110: "model"}
_EXIF_TAGS = {
    0xA433: "lens_make",
    0xA434: "lens_model",
    0x9003: "date_taken",
    0x9011: "offset_time",
    0x829A: "exposure_time",
    0x829D: "f_number",
    0x8827: "iso",
    0x920A: "focal_length",
    0xA405: "focal_length_35mm",
}
_EXIF_IFD = 0x8769
_SRGB = ImageCms.createProfile("sRGB")

pillow_heif.register_heif_opener()
# Import every Pillow format plugin now, not on the first Image.open (whose `formats` list names
# formats that only Image.init() registers): the fork server imports this module once, so job
# processes forked from it start with the plugins loaded. Measured: ~35 ms less per 12 MP job.
Image.init()


class BadInput(Exception):
    """This input can never be decoded."""


def bad_input(message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = "".join(c for c in str(value) if c.isprintable()).strip()
    return text[:100] or None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(number, 6) if number == number and abs(number) != float("inf") else None


def exif_summary(exif: Image.Exif) -> dict[str, Any]:
    """Camera, lens, date taken and exposure from `exif`; GPS is never read."""
    raw: dict[str, Any] = {name: exif.get(tag) for tag, name in _BASE_TAGS.items()}
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except (KeyError, ValueError, TypeError, OSError):
        sub = {}
    raw.update({name: sub.get(tag) for tag, name in _EXIF_TAGS.items()})
    summary: dict[str, Any] = {}
    for key in ("make", "model", "lens_make", "lens_model", "date_taken", "offset_time"):
        text = _text(raw[key]) if raw[key] is not None else None
        if text:
            summary[key] = text
    exposure = _number(raw["exposure_time"])
    if exposure and exposure > 0:
        summary["exposure_time"] = exposure
        summary["exposure"] = f"1/{round(1 / exposure)}" if exposure < 1 else f"{exposure:g}"
    for key in ("f_number", "focal_length", "focal_length_35mm"):
        if (number := _number(raw[key])) is not None and number > 0:
            summary[key] = number
    iso = raw["iso"]
    if isinstance(iso, tuple | list):
        iso = iso[0] if iso else None
    if (number := _number(iso)) is not None and number > 0:
        summary["iso"] = int(number)
    return summary


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if im.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(im, source, _SRGB, outputMode=mode) or im
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: keep the pixels as they are


def _flatten_mode(im: Image.Image) -> Image.Image:
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("RGB")
    has_alpha = im.mode in ("LA", "PA", "La") or "transparency" in im.info
    return im.convert("RGBA" if has_alpha else "RGB")


def _bomb(pixels: str, max_pixels: int) -> BadInput:
    return BadInput(
        f"image refused as a decompression bomb: {pixels}, more than max_image_pixels={max_pixels}"
    )


def decode(path: Path, *, max_pixels: int, draft_size: int) -> tuple[Image.Image, dict[str, Any]]:
    """(upright RGB/RGBA pixels, info about the original) or BadInput.

    The size is checked against `max_pixels` here, so the refusal names our setting and the
    image's size (Pillow's own check at open speaks of its limits: twice ours for an error);
    Pillow's checks then guard what opening does not show (frames, tiles)."""
    Image.MAX_IMAGE_PIXELS = None  # opening reads headers only
    try:
        # Pillow leaves a file it did not open alone: `im` stays usable once loaded.
        with warnings.catch_warnings(), open(path, "rb") as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(f, formats=FORMATS)
            width, height = im.size
            if max_pixels and width * height > max_pixels:
                raise _bomb(f"{width}x{height} = {width * height} pixels", max_pixels)
            Image.MAX_IMAGE_PIXELS = max_pixels or None
            info = {
                "width": width,
                "height": height,
                "format": im.format,
                "frames": getattr(im, "n_frames", 1),
                "animated": bool(getattr(im, "is_animated", False)),
                "exif": exif_summary(im.getexif()),
            }
            icc = im.info.get("icc_profile")
            if im.format == "JPEG":
                im.draft("RGB", (draft_size, draft_size))  # libjpeg scales while decoding
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            pixels = _flatten_mode(_to_srgb(im, icc))
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = PILLOW_BOMB_PIXELS.search(str(e))  # "Image size (N pixels) exceeds limit of ..."
        part = f"{found[1]} pixels in one frame or tile" if found else "one frame or tile"
        raise _bomb(part, max_pixels) from e
    except UnidentifiedImageError as e:
        raise BadInput("cannot decode image: not a supported image format") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise BadInput(f"cannot decode image: {e}") from e
    return pixels, info


def box_size(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled down to fit a box x box square (never up), keeping its aspect ratio."""
    width, height = size
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    return im if im.size == size else im.resize(size, RESAMPLE, reducing_gap=2.0)


def _save_webp(im: Image.Image, path: Path, quality: int) -> dict[str, Any]:
    im.info = {}  # nothing of the original's metadata may travel
    im.save(path, "WEBP", quality=quality, method=WEBP_METHOD, exif=b"", icc_profile=None)
    return {"width": im.width, "height": im.height, "mime": "image/webp"}


def derive(
    input: Path,
    out: Path,
    *,
    outputs: Mapping[str, str] = DEFAULT_OUTPUTS,
    thumb_size: int = 360,
    medium_size: int = 1280,
    quality: int = 82,
    max_pixels: int = 120_000_000,
    **_: Any,
) -> dict[str, Any]:
    """Write out/<outputs[thumb]> and out/<outputs[medium]>; return the original's size, EXIF
    summary and each output's size. Exits 65 on input that can never be decoded."""
    started = time.perf_counter()
    try:
        pixels, info = decode(Path(input), max_pixels=max_pixels, draft_size=medium_size)
    except BadInput as e:
        bad_input(str(e))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    medium = fit(pixels, box_size(pixels.size, medium_size))
    thumb = fit(medium, box_size(pixels.size, thumb_size))  # sized from the original's ratio
    done = {
        "medium": _save_webp(medium, out / outputs["medium"], quality),
        "thumb": _save_webp(thumb, out / outputs["thumb"], quality),
    }
    print(  # one line for the job's log
        f"derived {info['width']}x{info['height']} {info['format']}:"
        f" medium {medium.width}x{medium.height}, thumb {thumb.width}x{thumb.height}"
        f" in {time.perf_counter() - started:.3f} s",
        flush=True,
    )
    return {**info, "outputs": done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kwargs", default="{}", help="JSON object of derive() keywords")
    args = parser.parse_args(argv)
    result = derive(args.input, args.out, **json.loads(args.kwargs))
    tmp = args.out / ".result.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, args.out / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test images made with Pillow: every input format, EXIF with orientation and GPS, bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()

GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def gradient(size: tuple[int, int] = (400, 300)) -> Image.Image:
    """Left half red, right half blue: orientation is visible in the pixels."""
    im = Image.new("RGB", size, (220, 20, 20))
    im.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    return im


def image_bytes(fmt: str, size: tuple[int, int] = (400, 300), **save: object) -> bytes:
    im = gradient(size)
    if fmt == "GIF":
        im = im.convert("P")
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def camera_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Gremlin Camera Co"  # Make
    exif[0x0110] = "GC-1"  # Model
    exif[0x0112] = orientation
    exif.get_ifd(EXIF_IFD).update(
        {
            0x9003: "2024:05:06 07:08:09",  # DateTimeOriginal
            0x829A: 0.004,  # ExposureTime 1/250
            0x829D: 2.8,  # FNumber
            0x8827: 400,  # ISO
            0x920A: 35.0,  # FocalLength
            0xA434: "GC 35mm f/2.8",  # LensModel
        }
    )
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # Berlin
    )
    return exif


def camera_jpeg(size: tuple[int, int] = (400, 300), orientation: int = 6) -> bytes:
    """A landscape JPEG whose EXIF says "rotate 90° clockwise", with camera data and GPS."""
    buf = io.BytesIO()
    gradient(size).save(buf, "JPEG", quality=90, exif=camera_exif(orientation))
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def corrupt_jpeg() -> bytes:
    """A real JPEG cut off after its first 40%: the header parses, the pixels don't."""
    data = image_bytes("JPEG", (800, 600), quality=90)
    return data[: len(data) * 2 // 5]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (10 gigapixels by default)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


ALL_FORMATS = {
    "image/jpeg": lambda: image_bytes("JPEG"),
    "image/png": lambda: image_bytes("PNG"),
    "image/gif": lambda: image_bytes("GIF"),
    "image/webp": lambda: image_bytes("WEBP"),
    "image/tiff": lambda: image_bytes("TIFF"),
    "image/heic": lambda: image_bytes("HEIF"),
    "image/avif": lambda: image_bytes("AVIF"),
}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path

"""A decompression bomb's refusal names our setting and the image's pixels, never Pillow's own
limit (twice ours, which Pillow checks when it opens the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gremlin.media.base import EXIT_BAD_INPUT

from .images import bomb_png, image_bytes, write
from .test_image import run_worker


@pytest.mark.parametrize(
    ("data", "max_pixels", "expected"),
    [  # far over the limit (Pillow refuses at open), and just over it (our own check)
        (bomb_png(), 120_000_000, "100000x100000 = 10000000000 pixels"),
        (bomb_png(20_000, 12_000), 120_000_000, "20000x12000 = 240000000 pixels"),
        (image_bytes("PNG", (400, 300)), 100_000, "400x300 = 120000 pixels"),
        (image_bytes("GIF", (400, 600)), 100_000, "400x600 = 240000 pixels"),
    ],
    ids=["10-gigapixels", "twice-the-limit", "just-over", "gif"],
)
def test_the_bomb_refusal_names_max_image_pixels_and_the_image_pixels(
    data: bytes, max_pixels: int, expected: str, tmp_path: Path
) -> None:
    original = write(tmp_path / "in", data)
    done = run_worker(original, tmp_path / "out", max_pixels=max_pixels)
    assert done.returncode == EXIT_BAD_INPUT
    reason = done.stderr.strip().splitlines()[-1]
    assert reason.endswith(
        f"image refused as a decompression bomb: {expected},"
        f" more than max_image_pixels={max_pixels}"
    ), done.stderr
    assert str(2 * max_pixels) not in done.stderr or str(2 * max_pixels) in expected
    assert "exceeds limit" not in done.stderr and "DOS attack" not in done.stderr

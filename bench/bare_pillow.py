"""The bare Pillow baseline of bench_images.py: what a hand-written script does for the same
two outputs (thumb + medium WebP, same settings). As a script:

    python bench/bare_pillow.py OUT_DIR IMAGE...

(the batch baseline: one process, timed from its start like `gremlin import`); its function
`bare_pillow` is also timed in-process for one image (the latency baseline: the limit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageOps

THUMB, MEDIUM, QUALITY = 360, 1280, 82  # the defaults of thumb_size, medium_size, image_quality


def bare_pillow(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        im.draft("RGB", (MEDIUM, MEDIUM))
        im = ImageOps.exif_transpose(im)
    medium = im.copy()
    medium.thumbnail((MEDIUM, MEDIUM), Image.BICUBIC)
    medium.save(out / "medium.webp", "WEBP", quality=QUALITY, method=2)
    thumb = medium.copy()
    thumb.thumbnail((THUMB, THUMB), Image.BICUBIC)
    thumb.save(out / "thumb.webp", "WEBP", quality=QUALITY, method=2)


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    for i, name in enumerate(sys.argv[2:]):
        bare_pillow(Path(name), out_dir / str(i))

"""The "waveform" job: ffmpeg decodes the audio to a file of mono 16-bit samples (never a
pipe), then Pillow draws one bar per column from the peaks. Memory stays bounded: the samples
are read a column at a time. Runs inside the job runner as a Python step."""

from __future__ import annotations

import array
import ctypes
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import ffargs

if TYPE_CHECKING:
    from PIL import Image

COLOUR = (59, 130, 246, 255)
LONG_SECONDS = 1200.0  # longer audio is decoded at a lower rate: peaks need few samples


def _die_with_parent() -> None:
    """In the child: be killed when the worker dies (a SIGKILLed job leaves no ffmpeg)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_child(argv: list[str]) -> int:
    """Run `argv` with our stdout/stderr (the job log), stdin closed."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent).returncode


def peaks(pcm: Path, columns: int) -> list[float]:
    """Peak amplitude (0..1) of each of `columns` equal slices of signed 16-bit samples."""
    samples = pcm.stat().st_size // 2
    if samples == 0:
        return [0.0] * columns
    out = []
    with open(pcm, "rb") as f:
        for column in range(columns):
            start, end = samples * column // columns, samples * (column + 1) // columns
            chunk = array.array("h")
            chunk.frombytes(f.read(max(0, end - start) * 2))
            if sys.byteorder == "big":
                chunk.byteswap()
            out.append(max(max(chunk, default=0), -min(chunk, default=0)) / 32768.0)
    return out


def draw(values: list[float], width: int, height: int) -> Image.Image:
    """Bars mirrored around the middle, scaled so the loudest peak fills the height."""
    # Pillow is imported here, not at the top: every media type is loaded to sniff an upload
    # (`gremlin import` included), and this module came with it (~30 ms of start-up).
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    loudest = max(values, default=0.0) or 1.0
    middle = height / 2
    for x, value in enumerate(values):
        half = max(0.5, value / loudest * (middle - 1))
        pen.line([(x, middle - half), (x, middle + half)], fill=COLOUR)
    return image


def waveform_worker(
    input: Path,
    out: Path,
    *,
    ffmpeg: str,
    audio_index: int,
    name: str = "waveform.png",
    width: int = 1200,
    height: int = 200,
    duration: float | None = None,
) -> dict:
    scratch = Path(out).parent
    pcm = scratch / "waveform.pcm"
    rate = 2000 if duration and duration > LONG_SECONDS else 8000
    argv = ffargs.pcm(ffmpeg, audio_index, rate, str(input), str(pcm), str(scratch / "progress"))
    code = run_child(argv)
    if code != 0:
        raise SystemExit(code if 0 < code < 256 else 1)
    try:
        image = draw(peaks(pcm, width), width, height)
    finally:
        pcm.unlink(missing_ok=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    image.save(Path(out) / name, format="PNG", optimize=True)
    return {"width": width, "height": height}

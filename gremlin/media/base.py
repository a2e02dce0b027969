"""The media-type interface and the job contract shared by media types and the job engine.

A media type says which inputs it accepts (sniffed from content, never the extension), which
jobs it plans for a new media, how each job runs (a `Command` the runner executes in its own
detached process), what to do when a job finishes (record metadata, plan follow-up jobs), and
how its page shows it. Types register through the `gremlin.media_types` entry-point group.

Job directory contract (content/jobs/<job-id>/), written by the runner:
    pid         JSON {"pid", "start", "boot"}: written atomically before any output is trusted
    log         the command's stdout and stderr
    progress    ffmpeg `-progress` output (when the command writes one)
    out/        outputs; each declared output's file name relative to out/
    out/result.json   optional JSON the worker returns (dimensions, duration, exif ...)
    status      JSON {"exit_code", "signal", "finished_at"}: written atomically last
Exit code EXIT_BAD_INPUT (65, EX_DATAERR) means "this input can never work": no retry.
"""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..settings import Settings

EXIT_BAD_INPUT = 65


class Kind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


@dataclasses.dataclass(frozen=True)
class PlannedJob:
    """A job a media type wants: `outputs` maps a file role to a name under media/<id>/."""

    step: str
    outputs: Mapping[str, str]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    blocking: bool = True
    input_role: str = "original"  # which stored file of the media is the input


@dataclasses.dataclass(frozen=True)
class Command:
    """How a job runs: an external program (`argv`) or a Python function in the runner.

    `python` is "module:function", called as fn(input=Path, out=Path, **kwargs) -> dict, the
    dict written to out/result.json. `{input}`, `{out}`, `{progress}` in argv are filled in.
    """

    argv: tuple[str, ...] = ()
    python: str = ""
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    duration_seconds: float | None = None  # media duration, for progress and the time cap


@dataclasses.dataclass(frozen=True)
class JobView:
    """What a media type sees of a job."""

    id: int
    media_id: str
    step: str
    input: Path  # absolute
    out: Path  # absolute: the job's out/ directory
    outputs: Mapping[str, str]
    params: Mapping[str, Any]
    attempt: int


class MediaType(Protocol):
    name: str  # the entry-point name, e.g. "image"
    kind: Kind
    mimes: Sequence[str]  # what it accepts, for the 415 message

    def sniff(self, head: bytes) -> str | None:
        """The MIME type if this type accepts a file starting with `head` (>= 4 KiB), else None."""

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        """The first jobs for a new media (committed with it, in one transaction)."""

    def command(self, job: JobView, settings: Settings) -> Command:
        """How to run one of this type's jobs."""

    def on_done(
        self, conn: sqlite3.Connection, job: JobView, result: Mapping[str, Any], settings: Settings
    ) -> list[PlannedJob]:
        """Inside the transaction that finishes `job`: record metadata on the media row; return
        follow-up jobs (e.g. renditions after a probe)."""

"""Every setting in one frozen dataclass, loaded in one generic step.

Precedence: defaults -> ``SITE/gremlin.toml`` -> ``GREMLIN_<NAME>`` environment -> flags.
Each field carries its help text; ``docs/settings.md`` documents every one (a test checks).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from .errors import SettingsError


def _setting(default: Any, help: str) -> Any:
    if isinstance(default, list | dict):
        raise TypeError("settings must be immutable")
    return dataclasses.field(default=default, metadata={"help": help})


def default_jobs_concurrency() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


@dataclasses.dataclass(frozen=True)
class Settings:
    site: Path = _setting(Path("."), "The site directory: db.sqlite and content/ live here.")
    bind: str = _setting("127.0.0.1:8080", "HOST:PORT the web server listens on (port 0: any).")
    base_url: str = _setting(
        "", "Public URL of the site, for feeds and links (empty: from requests)."
    )

    jobs_concurrency: int = _setting(0, "Jobs run at once (0: CPU count minus one, at least 1).")
    jobs_nice: int = _setting(10, "Nice increment for job processes, so the web stays responsive.")
    max_attempts: int = _setting(3, "Attempts a job gets before its media is marked failed.")
    retry_backoff_seconds: float = _setting(
        5.0, "First retry delay; doubles each attempt, jittered."
    )
    retry_backoff_max_seconds: float = _setting(300.0, "Cap on the retry delay.")
    stall_seconds: float = _setting(
        60.0, "A job whose every liveness signal is still this long is killed as hung."
    )
    watchdog_poll_seconds: float = _setting(1.0, "How often the watchdog samples running jobs.")
    job_time_factor: float = _setting(
        20.0, "Wall-clock cap on a job: this many times the media duration ..."
    )
    job_time_min_seconds: float = _setting(600.0, "... but never less than this many seconds.")
    kill_grace_seconds: float = _setting(5.0, "Between SIGTERM and SIGKILL when stopping a job.")
    jobs_min_free_bytes: int = _setting(
        8 * 1024 * 1024,
        "Free space content/ must have before a job is launched; below it jobs pause.",
    )

    thumb_size: int = _setting(360, "Thumbnail bounding box, in pixels (longest side).")
    medium_size: int = _setting(1280, "Medium image bounding box, in pixels (longest side).")
    image_quality: int = _setting(82, "WebP quality of derived images (1-100).")
    max_image_pixels: int = _setting(
        120_000_000, "Images with more pixels are refused as decompression bombs."
    )
    video_heights: str = _setting(
        "360,720,1080", "Heights of the H.264 video ladder, comma-separated."
    )
    video_extra_codecs: str = _setting("", "Extra WebM renditions: '', 'vp9', 'av1' or 'vp9,av1'.")
    ffmpeg_path: str = _setting("", "ffmpeg to run (empty: PATH, else the imageio-ffmpeg binary).")
    ffprobe_path: str = _setting("", "ffprobe to run (empty: PATH, else probe with ffmpeg).")
    media_type_choice: str = _setting(
        "", "When two media types claim one input: 'input=type,...' pairs naming the winner."
    )

    public_originals: bool = _setting(
        False,
        "Let every viewer of a media download its original upload, which keeps all the"
        " camera's metadata (GPS included). Off: only its owner and admins.",
    )
    max_upload_bytes: int = _setting(8 * 1024**3, "Largest single upload accepted, in bytes.")
    user_quota_bytes: int = _setting(0, "Storage quota per user, in bytes (0: unlimited).")
    incoming_stale_hours: float = _setting(
        24.0, "Partial uploads untouched this long are removed by the garbage collector."
    )
    gc_interval_seconds: float = _setting(600.0, "How often the garbage collector runs.")
    fsck_budget_seconds_per_day: float = _setting(
        600.0, "Time the background integrity check may spend each day (0: off)."
    )
    fsck_orphan_grace_seconds: float = _setting(
        30.0, "fsck --repair leaves alone an orphan changed this recently (a commit in flight)."
    )

    shutdown_grace_seconds: float = _setting(
        10.0, "On SIGTERM: how long in-flight requests may take before they are cut."
    )
    handover_timeout_seconds: float = _setting(
        30.0, "Bound on each stage of an upgrade handover before it aborts."
    )
    maintenance_write_grace_seconds: float = _setting(
        10.0, "In maintenance: how long in-flight writes may take to finish."
    )
    signin_attempts_per_minute: int = _setting(
        10, "Failed sign-ins allowed per minute per address."
    )
    secure_cookies: bool = _setting(False, "Mark cookies Secure (set when served over https).")
    x_accel_redirect: str = _setting(
        "", "URL prefix for X-Accel-Redirect file responses behind nginx (empty: off)."
    )
    trusted_proxies: str = _setting(
        "",
        "Reverse proxies (IP addresses or CIDR networks, comma-separated) whose"
        " X-Forwarded-For and X-Forwarded-Proto are believed (empty: none).",
    )
    log_level: str = _setting("INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.")

    @property
    def db_path(self) -> Path:
        return self.site / "db.sqlite"

    @property
    def content(self) -> Path:
        return self.site / "content"

    def effective_jobs_concurrency(self) -> int:
        return self.jobs_concurrency or default_jobs_concurrency()

    def video_ladder(self) -> tuple[int, ...]:
        return tuple(sorted({int(h) for h in self.video_heights.split(",") if h.strip()}))

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        networks = []
        for entry in filter(None, (part.strip() for part in self.trusted_proxies.split(","))):
            try:
                networks.append(ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (CIDR)") from None
        return tuple(networks)


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _base_type(name: str) -> type:
    hint = typing.get_type_hints(Settings)[name]
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.cast(type, hint)


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _base_type(name)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true or false")
        if kind is int and isinstance(value, bool | float):
            raise ValueError("expected a whole number")
        if kind is Path:
            return Path(value)
        if kind is str and isinstance(value, list):  # a TOML list for a comma-separated one
            return ",".join(str(item) for item in value)
        if kind is float and not math.isfinite(float(value)):
            raise ValueError("must be a finite number")
        return kind(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(name, value, source, str(e) or f"expected {kind.__name__}") from e


def _validate(s: Settings, sources: Mapping[str, str]) -> None:
    def bad(name: str, why: str) -> SettingsError:
        return SettingsError(name, getattr(s, name), sources.get(name, "defaults"), why)

    for name in FIELDS:
        value = getattr(s, name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise bad(name, "must not be negative")
    if s.max_attempts < 1:
        raise bad("max_attempts", "must be at least 1")
    if not 1 <= s.image_quality <= 100:
        raise bad("image_quality", "must be between 1 and 100")
    if s.thumb_size < 16 or s.medium_size < 16:
        raise bad("thumb_size" if s.thumb_size < 16 else "medium_size", "must be at least 16")
    for name in ("stall_seconds", "watchdog_poll_seconds", "gc_interval_seconds"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be positive")
    if s.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise bad("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    host, sep, port = s.bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise bad("bind", "expected HOST:PORT, e.g. 127.0.0.1:8080")
    try:
        s.video_ladder()
    except ValueError:
        raise bad("video_heights", "expected whole numbers separated by commas") from None
    for pair in filter(str.strip, s.media_type_choice.split(",")):
        mime, sep, name = pair.partition("=")
        if not (sep and mime.strip() and name.strip()):
            raise bad("media_type_choice", "expected 'mime/type=type-name' pairs")
    try:
        s.trusted_proxy_networks()
    except ValueError as e:
        raise bad("trusted_proxies", str(e)) from None
    extra = {c.strip() for c in s.video_extra_codecs.split(",") if c.strip()}
    if extra - {"vp9", "av1"}:
        raise bad("video_extra_codecs", "allowed: vp9, av1")


def default_site() -> Path:
    return Path(os.environ.get("GREMLIN_SITE") or ".")


def load(
    site: Path | str | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults -> SITE/gremlin.toml -> GREMLIN_* environment -> flags (None values ignored)."""
    environ = os.environ if environ is None else environ
    site_path = Path(site) if site is not None else default_site()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    toml_path = site_path / "gremlin.toml"
    if toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SettingsError(
                "gremlin.toml", "...", str(toml_path), f"not valid TOML: {e}"
            ) from e
        for name, value in data.items():
            if name not in FIELDS or name == "site":
                raise SettingsError(name, value, str(toml_path), "no such setting")
            values[name] = _coerce(name, value, str(toml_path))
            sources[name] = str(toml_path)

    for name in FIELDS:
        key = f"GREMLIN_{name.upper()}"
        if name != "site" and key in environ:
            values[name] = _coerce(name, environ[key], f"${key}")
            sources[name] = f"${key}"

    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FIELDS:
            raise SettingsError(name, value, "command line", "no such setting")
        values[name] = _coerce(name, value, "command line")
        sources[name] = "command line"

    values["site"] = site_path.absolute()
    settings = Settings(**values)
    _validate(settings, sources)
    return settings


def describe(settings: Settings) -> list[tuple[str, Any, str]]:
    """(name, effective value, help) for `gremlin config`."""
    return [(f.name, getattr(settings, f.name), f.metadata["help"]) for f in FIELDS.values()]

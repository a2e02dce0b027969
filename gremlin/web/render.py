"""Pure helpers for pages: safe Markdown, dates, sizes, EXIF summaries. No I/O."""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import threading
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import markdown
import nh3
from markupsafe import Markup

from ..units import human_size as human_size  # the `size` filter: as refusals say sizes

# What a description may contain after Markdown: text formatting, links, lists, quotes, code.
# No images (a description must not make visitors' browsers fetch third-party URLs), no raw HTML
# attributes beyond links.
ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h3", "h4", "h5", "h6", "del", "sup", "sub",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


_local = threading.local()

# Python-Markdown's inline patterns take time in proportion to each "[" or "<" of a paragraph
# times the paragraph's length: 20,000 characters of "![" took 58 s, 5,000 of "[" (a comment)
# 6 s, in the thread that renders the page. Past this budget (about 0.2 s here) the text is
# shown as plain paragraphs instead; a usual description stays far below it.
MAX_MARKUP_WORK = 200_000
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _costly(text: str) -> bool:
    work = sum(
        (part.count("[") + part.count("<")) * len(part) for part in PARAGRAPH_BREAK.split(text)
    )
    return work > MAX_MARKUP_WORK


def _plain_html(text: str) -> str:
    """Text as escaped paragraphs, line breaks kept (what Markdown would be cheap for)."""
    parts = (part.strip() for part in PARAGRAPH_BREAK.split(text))
    return "\n".join(f"<p>{html.escape(p)}</p>".replace("\n", "<br>\n") for p in parts if p)


def _markdown_to_html(text: str) -> str:
    """Markdown to (unsanitised) HTML. One converter per thread, reset between uses: building
    a converter costs more than converting a description."""
    if _costly(text):
        return _plain_html(text)
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = markdown.Markdown(extensions=["sane_lists", "nl2br"], output_format="html")
    try:
        return md.convert(text)
    finally:
        md.reset()


@functools.lru_cache(maxsize=2048)
def _safe_html(text: str) -> str:
    return nh3.clean(
        _markdown_to_html(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer ugc",
    )


def safe_markdown(text: str) -> Markup:
    """Markdown rendered to HTML, then sanitised by nh3: safe to put in a page unescaped."""
    if not text.strip():
        return Markup("")
    return Markup(_safe_html(text))  # noqa: S704 - sanitised by nh3


def plain_summary(text: str, limit: int = 200) -> str:
    """A one-paragraph plain-text summary (Open Graph, feeds, oEmbed titles)."""
    # nh3 answers HTML (`&amp;`); the text is escaped where it is used, so unescape it here.
    words = " ".join(html.unescape(nh3.clean(_safe_html(text), tags=set())).split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def iso_date(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_date(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%-d %b %Y")


def human_duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# EXIF keys worth showing, in order, with a label. The image worker writes snake_case keys
# (make, model, lens_model, f_number, exposure_time, iso, focal_length, date_taken); EXIF tag
# names are accepted too (imported media).
EXIF_FIELDS = (
    (("lens_model", "LensModel", "Lens"), "Lens"),
    (("f_number", "FNumber", "Aperture"), "Aperture"),
    (("exposure_time", "ExposureTime", "Exposure"), "Exposure"),
    (("iso", "ISOSpeedRatings", "ISO", "PhotographicSensitivity"), "ISO"),
    (("focal_length", "FocalLength"), "Focal length"),
    (("date_taken", "DateTimeOriginal", "DateTime", "Taken"), "Taken"),
    (("software", "Software"), "Software"),
)


def _camera(exif: Mapping[str, Any]) -> str:
    """ "Fujifilm X100V" from make and model, without repeating the make."""
    make = str(exif.get("make") or exif.get("Make") or "").strip()
    model = str(exif.get("model") or exif.get("Model") or "").strip()
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}".strip()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple) and len(value) == 2 and value[1]:
        return float(value[0]) / float(value[1])
    try:
        return float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError):
        return None


def _exif_value(label: str, value: Any) -> str:
    n = _number(value)
    if label == "Aperture" and n:
        return f"f/{n:.1f}".replace(".0", "")
    if label == "Exposure" and n:
        return f"1/{round(1 / n)} s" if n < 1 else f"{n:g} s"
    if label == "Focal length" and n:
        return f"{n:g} mm"
    if label == "Taken" and isinstance(value, str) and re.match(r"\d{4}:\d\d:\d\d ", value):
        return value.replace(":", "-", 2)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).strip().strip("\x00")


def exif_summary(exif: Any) -> list[tuple[str, str]]:
    """(label, value) pairs for the well-known EXIF fields present in `exif` (a dict)."""
    if not isinstance(exif, Mapping):
        return []
    out = []
    if camera := _camera(exif):
        out.append(("Camera", camera[:120]))
    for keys, label in EXIF_FIELDS:
        for key in keys:
            value = exif.get(key)
            if value not in (None, "", [], {}):
                text = _exif_value(label, value)
                if text:
                    out.append((label, text[:120]))
                break
    return out


def progress_percent(jobs: list[Mapping[str, Any]]) -> int:
    """Overall progress of a media's blocking jobs, 0..100."""
    blocking = [j for j in jobs if j.get("blocking", 1)]
    if not blocking:
        return 100
    done = sum(1.0 if j["state"] == "done" else float(j["progress"] or 0) for j in blocking)
    return int(100 * done / len(blocking))

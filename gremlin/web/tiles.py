"""The thumbnail grid's tiles, built in Python: a grid page has hundreds of them, and Jinja's
async rendering (Quart's) spent most of the home page's time in the per-tile template.
Every value is escaped here by `markupsafe.escape`; the result is Markup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

from . import render


def tile(m: dict[str, Any], file_url: Callable[[str, str], str], show_owner: bool = True) -> Markup:
    """One <li class="tile"> (the caller may append extras before its end)."""
    mid = escape(m["id"])
    title = escape(m["title"] or "Untitled")
    thumb = m.get("thumb")
    if thumb:
        size = ""
        if thumb.get("width"):
            size = f' width="{int(thumb["width"])}" height="{int(thumb["height"])}"'
        src = escape(file_url(m["id"], thumb["role"]))
        pic = f'<img src="{src}" alt="{title}" loading="lazy" decoding="async"{size}>'
    else:
        pic = f'<span class="ph">{escape(m["kind"])}</span>'
    badges = []
    if m["state"] != "ready":
        badges.append(f'<span class="badge {escape(m["state"])}">{escape(m["state"])}</span>')
    if m["visibility"] != "public":
        badges.append(f'<span class="badge">{escape(m["visibility"])}</span>')
    if badges:
        pic += f'<span class="badges">{"".join(badges)}</span>'
    if m.get("duration"):
        pic += f'<span class="dur">{escape(render.human_duration(m["duration"]))}</span>'
    by = str(escape(render.human_date(m["created_at"])))
    if show_owner:
        owner = escape(m["owner_name"])
        by = f'by <a href="/u/{owner}">{owner}</a> · {by}'
    return Markup(  # noqa: S704 - every interpolated value is escaped above
        f'<a class="pic" href="/m/{mid}">{pic}</a>'
        f'<div class="meta"><a class="title" href="/m/{mid}">{title}</a>'
        f'<div class="by">{by}</div></div>'
    )

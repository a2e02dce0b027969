"""Atom feeds (site, user, tag, collection) and the oEmbed endpoint.

Feeds and oEmbed answer as a visitor would see the site: public, ready media only (oEmbed
also serves unlisted media, whose link was shared on purpose).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

from markupsafe import escape
from quart import Blueprint, Response, request, url_for
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, NotFound
from . import collections_db as cdb
from . import queries, render
from .pageutil import SITE_NAME, absolute, file_url, not_found, runtime, tag_redirect, warm_markdown

bp = Blueprint("feeds", __name__)  # errors answer in JSON (feed readers, oEmbed consumers)

ATOM = "http://www.w3.org/2005/Atom"
FEED_SIZE = 30
MEDIA_PATH = re.compile(r"^/m/([A-Za-z0-9_-]{1,64})/?$")


# What XML 1.0 cannot hold at all, not even escaped: one such character (a control character
# in an old or imported title) made the whole feed unreadable.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: NOT_XML.sub("", v) for k, v in attrs.items()})
    if text is not None:
        el.text = NOT_XML.sub("", text)
    return el


def entry_html(m: dict[str, Any]) -> str:
    """An entry's content: its picture and its (sanitised) description."""
    parts = []
    if m.get("thumb"):
        t = m["thumb"]
        size = f' width="{t["width"]}" height="{t["height"]}"' if t.get("width") else ""
        src = escape(absolute(file_url(m["id"], t["role"])))
        parts.append(f'<p><img src="{src}" alt="{escape(m["title"] or "Untitled")}"{size}></p>')
    parts.append(str(render.safe_markdown(m.get("description") or "")))
    return "".join(parts)


async def atom(
    title: str, self_path: str, alternate_path: str, items: list[dict[str, Any]]
) -> Response:
    await warm_markdown(m.get("description") for m in items)
    feed = ET.Element("feed", {"xmlns": ATOM})
    _sub(feed, "title", f"{title} · {SITE_NAME}")
    _sub(feed, "id", absolute(self_path))
    _sub(feed, "link", rel="self", href=absolute(self_path), type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=absolute(alternate_path), type="text/html")
    _sub(feed, "generator", SITE_NAME, version=runtime().version)
    newest = max((m["ready_at"] or m["created_at"] for m in items), default=0.0)
    _sub(feed, "updated", render.iso_date(newest or None) or "1970-01-01T00:00:00Z")
    for m in items:
        entry = _sub(feed, "entry")
        url = absolute(f"/m/{m['id']}")
        _sub(entry, "id", url)
        _sub(entry, "title", m["title"] or "Untitled")
        _sub(entry, "link", rel="alternate", href=url, type="text/html")
        _sub(entry, "published", render.iso_date(m["created_at"]))
        _sub(entry, "updated", render.iso_date(m["ready_at"] or m["created_at"]))
        author = _sub(entry, "author")
        _sub(author, "name", m["owner_name"])
        _sub(author, "uri", absolute(f"/u/{m['owner_name']}"))
        if enclosure := m.get("enclosure"):
            href = absolute(file_url(m["id"], enclosure["role"]))
            length = str(enclosure["size"])
            _sub(entry, "link", rel="enclosure", href=href, type=enclosure["mime"], length=length)
        _sub(entry, "content", entry_html(m), type="html")
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")
    return Response(
        body,
        content_type="application/atom+xml; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@bp.get("/feed.atom")
async def site_feed() -> ResponseReturnValue:
    listing = await runtime().store.read(queries.recent_public, None, FEED_SIZE)
    items = await runtime().store.read(queries.attach_enclosures, listing.items)
    return await atom("Recent media", "/feed.atom", "/", items)


@bp.get("/u/<name>/feed.atom")
async def user_feed(name: str) -> ResponseReturnValue:
    owner = await runtime().store.read(queries.user_named, name)
    if owner is None:
        raise not_found("user")
    listing = await runtime().store.read(
        queries.user_gallery, owner["id"], queries.VISITOR, None, FEED_SIZE
    )
    items = await runtime().store.read(queries.attach_enclosures, listing.items)
    return await atom(owner["name"], f"/u/{name}/feed.atom", f"/u/{name}", items)


@bp.get("/tag/<tag>/feed.atom")
async def tag_feed(tag: str) -> ResponseReturnValue:
    if moved := tag_redirect("feeds.tag_feed", tag):
        return moved
    listing = await runtime().store.read(queries.tagged, tag, None, FEED_SIZE)
    items = await runtime().store.read(queries.attach_enclosures, listing.items)
    self_path, page_path = url_for("feeds.tag_feed", tag=tag), url_for("pages.tag_page", tag=tag)
    return await atom(f"#{tag}", self_path, page_path, items)  # url_for quotes '#', '?', ' '


@bp.get("/u/<name>/c/<slug>/feed.atom")
async def collection_feed(name: str, slug: str) -> ResponseReturnValue:
    owner = await runtime().store.read(queries.user_named, name)
    coll = owner and await runtime().store.read(cdb.collection_by_slug, owner["id"], slug)
    if not coll:
        raise not_found("collection")
    items = await runtime().store.read(cdb.collection_items, coll["id"], queries.VISITOR)
    items = [m for m in items if m["visibility"] == "public"][:FEED_SIZE]
    items = await runtime().store.read(queries.attach_enclosures, items)
    base = f"/u/{name}/c/{slug}"
    return await atom(coll["title"], f"{base}/feed.atom", base, items)


def _bounded(size: dict[str, Any], max_w: int | None, max_h: int | None) -> tuple[int, int]:
    w, h = int(size.get("width") or 0), int(size.get("height") or 0)
    if not w or not h:
        return max_w or 640, max_h or 360
    scale = min(1.0, (max_w or w) / w, (max_h or h) / h)
    return max(1, int(w * scale)), max(1, int(h * scale))


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) == 0:
        raise BadRequest(f"{name} must be a positive whole number")
    return int(value)


def _sources(media_id: str, files: list[dict[str, Any]]) -> str:
    return "".join(
        f'<source src="{escape(absolute(file_url(media_id, f["role"])))}"'
        f' type="{escape(f["mime"])}">'
        for f in files
    )


def oembed_for(m: dict[str, Any], max_w: int | None, max_h: int | None) -> dict[str, Any]:
    files = m["files"]
    out: dict[str, Any] = {
        "version": "1.0",
        "title": m["title"] or "Untitled",
        "author_name": m["owner_name"],
        "author_url": absolute(f"/u/{m['owner_name']}"),
        "provider_name": SITE_NAME,
        "provider_url": absolute("/"),
        "cache_age": 3600,
    }
    thumb = files.get("thumb") or files.get("poster") or files.get("waveform")
    if thumb:
        out["thumbnail_url"] = absolute(file_url(m["id"], thumb["role"]))
        if thumb.get("width"):
            out["thumbnail_width"], out["thumbnail_height"] = thumb["width"], thumb["height"]
    page_url = absolute(f"/m/{m['id']}")
    title = escape(out["title"])
    videos = sorted(
        (f for r, f in files.items() if r.startswith("video_")), key=lambda f: f.get("height") or 0
    )
    audios = [f for r, f in files.items() if r.startswith("audio_")]
    image = files.get("medium") or files.get("original")
    if m["kind"] == "video" and videos:
        w, h = _bounded(videos[-1], max_w, max_h)
        poster = ""
        if files.get("poster"):
            poster = f' poster="{escape(absolute(file_url(m["id"], "poster")))}"'
        sources = _sources(m["id"], list(reversed(videos)))
        html = (
            f'<video controls preload="metadata" width="{w}" height="{h}"{poster}'
            f' title="{title}">{sources}</video>'
        )
        out.update(type="video", width=w, height=h, html=html)
    elif m["kind"] == "audio" and audios:
        w = max_w or 480
        html = (
            f'<audio controls preload="metadata" title="{title}" style="width:{w}px">'
            f"{_sources(m['id'], audios)}</audio>"
        )
        out.update(type="rich", width=w, height=54, html=html)
    elif image is not None and image["mime"].startswith("image/"):
        w, h = _bounded(image, max_w, max_h)
        out.update(type="photo", url=absolute(file_url(m["id"], image["role"])), width=w, height=h)
    else:
        out.update(type="link")
    out["html"] = out.get("html") or f'<a href="{escape(page_url)}">{title}</a>'
    if out["type"] == "link":
        del out["html"]
    return out


@bp.get("/oembed")
async def oembed() -> ResponseReturnValue:
    url = request.args.get("url", "")
    fmt = request.args.get("format", "json")
    if fmt != "json":
        return Response("only format=json is offered", status=501, content_type="text/plain")
    match = MEDIA_PATH.match(urlsplit(url).path)
    if not url or match is None:
        raise NotFound("that URL is not a media page of this site")
    m = await runtime().store.read(queries.media_detail, match.group(1))
    if m is None or not queries.may_view(m, queries.VISITOR):
        raise NotFound("there is no such public media")
    return oembed_for(m, _int_arg("maxwidth"), _int_arg("maxheight"))

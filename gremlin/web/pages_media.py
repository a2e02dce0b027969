"""Pages that change media: upload (form and JS uploader), edit, delete, retry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..errors import GremlinError
from ..media.registry import load_media_types, supported_mimes
from ..store import fsync_dir
from . import auth, media_edit
from .pages import viewable_media
from .pageutil import (
    error_page,
    not_found,
    page,
    redirect_to,
    require_signed_in,
    runtime,
)
from .queries import Viewer

log = logging.getLogger(__name__)

bp = Blueprint("mymedia", __name__)
bp.register_error_handler(GremlinError, error_page)


async def managed_media(media_id: str) -> tuple[dict[str, Any], Viewer]:
    """The media if the signed-in viewer owns it or is an admin; 404 otherwise."""
    who = await require_signed_in()
    media = await viewable_media(media_id)
    if not who.may_manage(media["owner_id"]):
        raise not_found("media")
    return media, who


def accepted_kinds() -> str:
    try:
        mimes = supported_mimes(load_media_types(runtime().settings))
    except GremlinError:
        return ""
    kinds = sorted({m.partition("/")[0] for m in mimes} - {"image"})
    return ", ".join(kinds)


@bp.get("/upload")
async def upload() -> ResponseReturnValue:
    await require_signed_in()
    settings = runtime().settings
    return await page("upload.html", max_bytes=settings.max_upload_bytes, accepts=accepted_kinds())


@bp.post("/upload")
@auth.streams_body
async def upload_post() -> ResponseReturnValue:
    """The plain form (no JavaScript): the same streamed body and commit as POST /api/v1/media."""
    from . import uploads_form  # helper C1's streamed multipart commit

    who = await require_signed_in()
    media_id = await uploads_form.receive_form_upload(who.user_id)
    return redirect_to("pages.media_page", done="uploaded", media_id=media_id)


@bp.get("/m/<media_id>/edit")
async def edit(media_id: str) -> ResponseReturnValue:
    media, _ = await managed_media(media_id)
    return await page("edit.html", m=media, licenses=media_edit.LICENSES)


@bp.post("/m/<media_id>/edit")
async def edit_post(media_id: str) -> ResponseReturnValue:
    media, _ = await managed_media(media_id)
    form = await request.form
    try:
        changes = media_edit.MediaChanges.from_form(form.to_dict())
    except GremlinError as e:
        return await page(
            "edit.html", status=e.status, m=media, licenses=media_edit.LICENSES, error=e.message
        )
    await runtime().store.write(media_edit.update_media, media_id, changes)
    return redirect_to("pages.media_page", done="saved", media_id=media_id)


@bp.get("/m/<media_id>/delete")
async def delete(media_id: str) -> ResponseReturnValue:
    media, _ = await managed_media(media_id)
    return await page("delete.html", m=media)


@bp.post("/m/<media_id>/delete")
async def delete_post(media_id: str) -> ResponseReturnValue:
    media, who = await managed_media(media_id)
    paths = await runtime().store.write(media_edit.delete_media_rows, media_id)
    await trio.to_thread.run_sync(remove_files, runtime().site.content, media_id, paths)
    log.info("media deleted: media=%s by=%s files=%d", media_id, who.name, len(paths))
    return redirect_to("pages.gallery", done="deleted", name=media["owner_name"])


def remove_files(content: Path, media_id: str, paths: list[str]) -> None:
    """Remove a deleted media's files (their rows are gone already) and its empty directories."""
    dirs = {content / "media" / media_id, content / "queue" / media_id}
    for rel in paths:
        target = (content / rel).resolve()
        if not target.is_relative_to(content.resolve()):
            continue
        target.unlink(missing_ok=True)
        dirs.add(target.parent)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            continue
        fsync_dir(d.parent)


@bp.post("/m/<media_id>/retry")
async def retry(media_id: str) -> ResponseReturnValue:
    await managed_media(media_id)
    await retry_processing(media_id)
    return redirect_to("pages.media_page", done="retrying", media_id=media_id)


async def retry_processing(media_id: str) -> None:
    """Requeue a failed media's failed jobs (the job engine's own retry) and wake the engine."""
    from ..store.job_queries import retry_media

    await runtime().store.write(retry_media, media_id)
    runtime().nudge_jobs()

"""Comments on the media page: post one (members), delete one (its author, the media's
owner, admins). Only on media the viewer may see; anything else is a 404."""

from __future__ import annotations

import logging

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, GremlinError
from . import comments_db
from .pages import render_media_page
from .pageutil import error_page, redirect_to, require_signed_in, runtime

log = logging.getLogger(__name__)

bp = Blueprint("comments", __name__)
bp.register_error_handler(GremlinError, error_page)


@bp.post("/m/<media_id>/comments")
async def post_comment(media_id: str) -> ResponseReturnValue:
    who = await require_signed_in()
    draft = (await request.form).get("body", "")
    try:
        comments_db.clean_body(draft)
    except BadRequest as e:  # the page again, with the message and what was written
        return await render_media_page(
            media_id, status=e.status, comment_error=e.message, draft=draft
        )
    comment_id = await runtime().store.write(comments_db.add_comment, media_id, who, draft)
    log.info("comment added: media=%s comment=%d by=%s", media_id, comment_id, who.name)
    return redirect_to(
        "pages.media_page", done="commented", media_id=media_id, _anchor=f"c{comment_id}"
    )


@bp.post("/m/<media_id>/comments/<int:comment_id>/delete")
async def delete_comment(media_id: str, comment_id: int) -> ResponseReturnValue:
    who = await require_signed_in()
    await runtime().store.write(comments_db.delete_comment, media_id, comment_id, who)
    log.info("comment deleted: media=%s comment=%d by=%s", media_id, comment_id, who.name)
    return redirect_to(
        "pages.media_page", done="comment_deleted", media_id=media_id, _anchor="comments"
    )

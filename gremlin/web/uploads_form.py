"""The plain multipart upload (POST /api/v1/media, and the no-JavaScript page form): the
request body streamed to content/incoming/, then the one shared commit (invariant 2).

A view that calls these must be marked `@auth.streams_body`, or Quart would buffer the body.
"""

from __future__ import annotations

import trio
from quart import request

from ..errors import BadRequest, Maintenance
from ..media.commit import Committed, client_file_name, commit_upload
from ..runtime import Mode
from .auth import get_runtime
from .bodies import body_reader, too_large
from .media_edit import without_controls
from .multipart import parse_form_upload

FORM_OVERHEAD_BYTES = 1024 * 1024  # fields and part headers beside the file


def check_writable() -> None:
    """503 + Retry-After while the site is in maintenance (an upgrade is copying data)."""
    runtime = get_runtime()
    if runtime.mode == Mode.MAINTENANCE or runtime.store.frozen:
        raise Maintenance()


async def commit_form_upload(owner_id: int) -> Committed:
    runtime = get_runtime()
    settings = runtime.settings
    check_writable()
    # The body may hold the fields beside the file; the refusal names the file's limit.
    reader = body_reader(
        settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        lambda _: too_large(settings.max_upload_bytes),
    )
    upload = await parse_form_upload(
        reader,
        request.headers.get("Content-Type"),
        runtime.site.incoming,
        max_file_bytes=settings.max_upload_bytes,
    )
    if upload.staged is None:
        raise BadRequest("the form has no `file` part", hint="curl -F file=@photo.jpg URL")
    fields = upload.fields
    try:
        committed = await commit_upload(
            runtime.store,
            settings,
            owner_id=owner_id,
            staged=upload.staged,
            original_name=client_file_name(upload.filename),
            title=without_controls(fields.get("title", "")),
            description=without_controls(fields.get("description", "").replace("\r\n", "\n")),
            tags=fields.get("tags", ""),
            visibility=fields.get("visibility", "") or "public",
            license=without_controls(fields.get("license", "")),
            size=upload.size,
            sha256=upload.sha256,
        )
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(upload.discard)
        raise
    runtime.nudge_jobs()
    return committed


async def receive_form_upload(owner_id: int) -> str:
    """For the page form: stream, commit, and return the new media's id."""
    return (await commit_form_upload(owner_id)).media_id

"""The tus 1.0.0 endpoint at /api/v1/uploads (core, creation, termination).

PATCH bodies are streamed (never buffered), appended to content/incoming/<id>.bin and fsynced
before the 204 that acknowledges them. The PATCH that brings the upload to its full length
commits it through gremlin.media.commit (invariant 2) and answers `Gremlin-Media-Id`.

Exactly-once commit: the commit transaction records upload -> media in `meta`; after it, the
upload's JSON gets the media id. The commit gets a hard link of the bytes, so until the media
id is recorded the bytes stay in incoming/. A complete upload found without a media id (a
crash, a 503 in maintenance, a full disk) is reconciled on its next HEAD or PATCH: either its
commit did land (found in `meta`) and is recorded, or the last byte is dropped again so that
the client re-sends it and that PATCH commits. Refusals that can never
succeed (415, 422, 413 quota, 400) remove the upload.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, current_app, request
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, Conflict, GremlinError, TooLarge, Unprocessable, Unsupported
from ..media.commit import VISIBILITIES, check_quota, client_file_name, commit_upload
from ..store import sha256_file
from . import tus
from .auth import CsrfRefused, base_url, csrf_pending, get_runtime, require_user, streams_body
from .bodies import body_reader, fsync_fd, too_large
from .media_edit import without_controls
from .tus import TUS_EXTENSIONS, TUS_VERSION, UploadState
from .uploads_form import check_writable

log = logging.getLogger(__name__)

bp = Blueprint("tus", __name__, url_prefix="/api/v1/uploads")


@dataclasses.dataclass
class _Live:
    """In-process help for uploads being received: one PATCH at a time, running hashes."""

    locks: dict[str, trio.Lock] = dataclasses.field(default_factory=dict)
    hashes: dict[str, tuple[int, Any]] = dataclasses.field(default_factory=dict)

    def lock(self, upload_id: str) -> trio.Lock:
        return self.locks.setdefault(upload_id, trio.Lock())

    def release(self, upload_id: str) -> None:
        lock = self.locks.get(upload_id)
        if lock is not None and not lock.locked() and not lock.statistics().tasks_waiting:
            del self.locks[upload_id]

    def hasher_at(self, upload_id: str, offset: int) -> Any:
        """A running SHA-256 of the first `offset` bytes, if this process kept one."""
        if offset == 0:
            return hashlib.sha256()
        kept = self.hashes.pop(upload_id, None)
        return kept[1] if kept is not None and kept[0] == offset else None


def _live() -> _Live:
    live: _Live = current_app.extensions.setdefault("gremlin.tus", _Live())
    return live


@bp.after_request
async def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@bp.route("", methods=["OPTIONS"], provide_automatic_options=False)
@bp.route("/<upload_id>", methods=["OPTIONS"], provide_automatic_options=False)
async def options(upload_id: str | None = None) -> ResponseReturnValue:
    headers = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(get_runtime().settings.max_upload_bytes),
    }
    return Response(b"", status=204, headers=headers)


@bp.post("")
async def create() -> ResponseReturnValue:
    tus.check_resumable(request.headers.get("Tus-Resumable"))
    user = await require_user()
    check_writable()
    runtime = get_runtime()
    settings = runtime.settings
    if request.headers.get("Upload-Defer-Length"):
        raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length")
    if (request.content_length or 0) > 0:
        raise BadRequest("creation-with-upload is not supported: PATCH the bytes")
    length = tus.parse_length(request.headers.get("Upload-Length"), "Upload-Length")
    if length == 0:
        raise Unprocessable("the file is empty (zero bytes)", hint="Choose the file again.")
    if length > settings.max_upload_bytes:
        raise too_large(settings.max_upload_bytes)
    metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
    if metadata.get("visibility", "public") not in VISIBILITIES:
        raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
    await runtime.store.read(check_quota, user.id, length, settings.user_quota_bytes)
    state = UploadState(tus.new_upload_id(), user.id, length, metadata, time.time())
    await trio.to_thread.run_sync(tus.create, runtime.site.incoming, state)
    log.info("upload created: upload=%s owner=%d length=%d", state.id, user.id, length)
    location = f"{base_url()}/api/v1/uploads/{state.id}"
    return Response(b"", status=201, headers={"Location": location, "Upload-Offset": "0"})


async def _reload(incoming: Path, state: UploadState) -> UploadState:
    """The upload as it is now: the request that held its lock may have committed it or
    terminated it (404) while this one waited."""
    return await trio.to_thread.run_sync(tus.load, incoming, state.id, state.owner_id)


async def _reconcile(state: UploadState) -> tuple[UploadState, int]:
    """(state, offset to report) after settling a complete-but-uncommitted upload."""
    runtime = get_runtime()
    incoming = runtime.site.incoming
    if state.media_id is not None:
        return state, state.length
    size = await trio.to_thread.run_sync(tus.offset_on_disk, incoming, state.id)
    if size < state.length:
        return state, size
    media_id = await runtime.store.read(tus.find_committed, state.id)
    if media_id is not None:
        state = await _record_committed(state, media_id)
        log.info("upload commit recovered: upload=%s media=%s", state.id, media_id)
        return state, state.length
    _live().hashes.pop(state.id, None)
    await trio.to_thread.run_sync(tus.truncate_to, incoming, state.id, state.length - 1)
    return state, state.length - 1


async def _record_committed(state: UploadState, media_id: str) -> UploadState:
    incoming = get_runtime().site.incoming
    state = dataclasses.replace(state, media_id=media_id)
    await trio.to_thread.run_sync(tus.save, incoming, state)
    await trio.to_thread.run_sync(lambda: tus.remove(incoming, state.id, keep_json=True))
    with contextlib.suppress(GremlinError):  # in maintenance the row simply stays a while
        await get_runtime().store.write(tus.forget_commit, state.id)
    return state


def _progress_headers(state: UploadState, offset: int) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Cache-Control": "no-store"}
    if state.media_id is not None:
        headers["Gremlin-Media-Id"] = state.media_id
    return headers


async def _own_upload(upload_id: str) -> tuple[Path, UploadState]:
    """The tus checks every request on one upload starts with: protocol version, a user, and
    that user's upload (404 otherwise). Returns (content/incoming, its state)."""
    tus.check_resumable(request.headers.get("Tus-Resumable"))
    user = await require_user()
    incoming = get_runtime().site.incoming
    state = await trio.to_thread.run_sync(tus.load, incoming, upload_id, user.id)
    return incoming, state


@bp.route("/<upload_id>", methods=["HEAD"])
async def head(upload_id: str) -> ResponseReturnValue:
    incoming, state = await _own_upload(upload_id)
    live = _live()
    try:
        async with live.lock(upload_id):
            state = await _reload(incoming, state)
            state, offset = await _reconcile(state)
    finally:
        live.release(upload_id)
    headers = _progress_headers(state, offset)
    headers["Upload-Length"] = str(state.length)
    return Response(b"", status=200, headers=headers)


@bp.patch("/<upload_id>")
@streams_body
async def patch(upload_id: str) -> ResponseReturnValue:
    tus.check_resumable(request.headers.get("Tus-Resumable"))
    user = await require_user()
    if csrf_pending():
        raise CsrfRefused("send the X-CSRF-Token header with each PATCH")
    if request.mimetype != tus.OFFSET_CONTENT_TYPE:
        raise Unsupported(f"PATCH bodies must be {tus.OFFSET_CONTENT_TYPE}")
    offset = tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
    incoming = get_runtime().site.incoming
    state = await trio.to_thread.run_sync(tus.load, incoming, upload_id, user.id)
    live = _live()
    try:
        async with live.lock(upload_id):
            state = await _reload(incoming, state)
            state, current = await _reconcile(state)
            if state.media_id is None:
                if offset != current:
                    raise Conflict(f"Upload-Offset {offset} does not match the upload ({current})")
                check_writable()
                state, current = await _receive(state, current)
            elif offset != state.length:
                raise Conflict(f"the upload is complete; Upload-Offset {offset} is not its end")
    finally:
        live.release(upload_id)
    return Response(b"", status=204, headers=_progress_headers(state, current))


async def _receive(state: UploadState, offset: int) -> tuple[UploadState, int]:
    """Append this PATCH's body; commit when the upload is complete."""
    live = _live()
    bin_path = tus.paths(get_runtime().site.incoming, state.id).bin
    reader = body_reader(state.length - offset, functools.partial(_past_length, state, offset))
    hasher = live.hasher_at(state.id, offset)
    fd = await trio.to_thread.run_sync(os.open, bin_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        try:
            await reader.copy_to(fd, digest=hasher, path=bin_path)
            complete = True
        except BaseException:
            complete = False
            raise
        finally:
            with trio.CancelScope(shield=True):
                await fsync_fd(fd, bin_path)  # whatever arrived is kept: the client resumes
                size = os.fstat(fd).st_size
                if complete and hasher is not None:
                    live.hashes[state.id] = (size, hasher)
    finally:
        os.close(fd)
    if size < state.length:
        return state, size
    live.hashes.pop(state.id, None)
    state = await _commit(state, hasher)
    return state, state.length


def _past_length(state: UploadState, offset: int, room: int) -> TooLarge:
    """A PATCH body longer than what is left of the client's own Upload-Length.

    tus 1.0.0 names no status for this (its 413 rule is for an Upload-Length over
    Tus-Max-Size, in the creation extension). 413 is HTTP's "content larger than the server is
    willing to process" (RFC 9110 15.5.14), which is exactly this, and it is what tusd answers;
    400 would call the request malformed, yet its headers are fine. Like tusd's, the error
    names the client's declared length, not the site's limit: raising max_upload_bytes would
    not help."""
    return TooLarge(
        f"the PATCH body goes past the Upload-Length this upload declared ({state.length} "
        f"bytes): at Upload-Offset {offset} at most {room} more bytes fit",
        hint="Send no more than Upload-Length minus Upload-Offset bytes; nothing past that "
        "is stored.",
    )


async def _commit(state: UploadState, hasher: Any) -> UploadState:
    runtime = get_runtime()
    incoming = runtime.site.incoming
    if hasher is not None:
        sha256 = hasher.hexdigest()
    else:
        _, sha256 = await trio.to_thread.run_sync(sha256_file, tus.paths(incoming, state.id).bin)
    staged = await trio.to_thread.run_sync(tus.link_for_commit, incoming, state.id)
    meta = state.metadata
    try:
        committed = await commit_upload(
            runtime.store,
            runtime.settings,
            owner_id=state.owner_id,
            staged=staged,
            original_name=client_file_name(meta.get("filename") or meta.get("name") or ""),
            title=without_controls(meta.get("title", "")),
            description=without_controls(meta.get("description", "")),
            tags=meta.get("tags", ""),
            visibility=meta.get("visibility") or "public",
            license=without_controls(meta.get("license", "")),
            size=state.length,
            sha256=sha256,
            on_commit=tus.record_commit(state.id),
        )
    except GremlinError as e:
        with trio.CancelScope(shield=True):
            if e.status in (400, 413, 415, 422):  # this upload can never commit: drop it
                await trio.to_thread.run_sync(tus.remove, incoming, state.id)
            else:  # maintenance, disk full ...: the client re-sends the last byte later
                await _uncommit(state)
        raise
    except BaseException:
        with trio.CancelScope(shield=True):
            await _uncommit(state)
        raise
    state = await _record_committed(state, committed.media_id)
    runtime.nudge_jobs()
    log.info("upload finished: upload=%s media=%s", state.id, committed.media_id)
    return state


async def _uncommit(state: UploadState) -> None:
    incoming = get_runtime().site.incoming
    await trio.to_thread.run_sync(tus.paths(incoming, state.id).staged.unlink, True)
    await trio.to_thread.run_sync(tus.truncate_to, incoming, state.id, state.length - 1)


@bp.delete("/<upload_id>")
async def terminate(upload_id: str) -> ResponseReturnValue:
    incoming, state = await _own_upload(upload_id)
    live = _live()
    try:
        async with live.lock(upload_id):
            await trio.to_thread.run_sync(tus.remove, incoming, state.id)
            live.hashes.pop(state.id, None)
    finally:
        live.release(upload_id)
    log.info("upload terminated: upload=%s committed=%s", state.id, state.media_id)
    return Response(b"", status=204)

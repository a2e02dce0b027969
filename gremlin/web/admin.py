"""The admin panel: jobs (running, queued, failed), users, storage, server facts."""

from __future__ import annotations

import shutil
import time
from typing import Any

import trio
from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..errors import BadRequest, GremlinError
from ..store.queries import status_counts
from . import admin_db
from .pages_media import retry_processing
from .pageutil import error_page, page, redirect_to, require_admin, runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")
MIB = 1024 * 1024
MAX_QUOTA_BYTES = 2**60  # 1 EiB; SQLite's integers end at 2**63 - 1
bp.register_error_handler(GremlinError, error_page)


async def ffmpeg_facts() -> dict[str, Any]:
    """The ffmpeg the site uses (found once per process; the lookup runs ffmpeg)."""
    from ..media import ffmpeg

    return await trio.to_thread.run_sync(ffmpeg.status, runtime().settings)


def _last_fsck(conn: Any) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT started_at, finished_at, findings FROM fsck_runs"
        " ORDER BY coalesce(finished_at, started_at) DESC LIMIT 1"
    ).fetchone()
    return dict(row) if row else None


@bp.get("")
async def panel() -> ResponseReturnValue:
    await require_admin()
    rt = runtime()
    store = rt.store
    counts = await store.read(status_counts)
    disk = await trio.to_thread.run_sync(shutil.disk_usage, rt.site.content)
    return await page(
        "admin/panel.html",
        counts=counts,
        jobs=await store.read(admin_db.jobs_overview),
        users=await store.read(admin_db.users_overview),
        storage=await store.read(admin_db.storage_by_role),
        disk=disk,
        fsck=await store.read(_last_fsck),
        ffmpeg=await ffmpeg_facts(),
        rt=rt,
        uptime=time.time() - rt.started_at,
        default_quota=rt.settings.user_quota_bytes,
    )


@bp.get("/jobs.json")
async def jobs_json() -> ResponseReturnValue:
    """Live progress of running jobs, polled by the panel's small script."""
    await require_admin()
    return {"running": await runtime().store.read(admin_db.running_progress)}


@bp.post("/users/<int:user_id>")
async def set_user(user_id: int) -> ResponseReturnValue:
    who = await require_admin()
    form = await request.form
    disabled = form.get("action") == "disable"
    await runtime().store.write(admin_db.set_disabled, user_id, disabled, who.user_id)
    return redirect_to("admin.panel", done="user_updated", _anchor="users")


@bp.post("/users/<int:user_id>/quota")
async def set_quota(user_id: int) -> ResponseReturnValue:
    await require_admin()
    text = (await request.form).get("quota_mib", "").strip()
    try:
        quota = None if text == "" else int(float(text) * MIB)
    except (ValueError, OverflowError):  # not a number; inf
        raise BadRequest("the quota is in MiB (0: unlimited; empty: the default)") from None
    if quota is not None and quota > MAX_QUOTA_BYTES:
        raise BadRequest("the quota is larger than 1 EiB", hint="0 means unlimited.")
    await runtime().store.write(admin_db.set_quota, user_id, quota)
    return redirect_to("admin.panel", done="user_updated", _anchor="users")


@bp.post("/retry/<media_id>")
async def retry(media_id: str) -> ResponseReturnValue:
    await require_admin()
    await retry_processing(media_id)
    return redirect_to("admin.panel", done="retrying", _anchor="jobs")

"""The pages' view of gremlin.web.auth (helper C1's module): who is looking, CSRF, file URLs."""

from __future__ import annotations

from . import auth
from .queries import VISITOR, Viewer

csrf_token = auth.csrf_token


async def current_viewer() -> Viewer:
    user = await auth.current_user()
    if user is None:
        return VISITOR
    return Viewer(id=user.id, name=user.name, is_admin=user.is_admin)


def file_url(media_id: str, role: str) -> str:
    """Where a stored file of a media is served (the file route checks visibility itself)."""
    return f"/files/{media_id}/{role}"

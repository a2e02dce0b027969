"""Default titles and display names from the file names that multipart and tus clients send."""

from __future__ import annotations

from typing import Any

import pytest
from quart_trio import QuartTrio

from gremlin.media.commit import client_file_name, default_title, display_name
from gremlin.runtime import Runtime

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, multipart
from .test_tus import create, patch, path_of

# (what the client sent, the display name kept, the default title)
CASES = [
    ("line1%0Aline2.jpg", "line1line2.jpg", "line1line2"),
    ("%00nul.jpg", "nul.jpg", "nul"),
    ("..", "upload", "upload"),
    (".", "upload", "upload"),
    ("a%22b<script>x.jpg", 'a"b<script>x.jpg', 'a"b<script>x'),  # as a browser sends it
    ('a"b<script>x</script>.jpg', 'a"b<script>x<_script>.jpg', 'a"b<script>x< script>'),
    ("caf%C3%A9.jpg", "café.jpg", "café"),
    ("50%25 off.jpg", "50%25 off.jpg", "50%25 off"),  # maybe its real name: kept
    ("100%.jpg", "100%.jpg", "100%"),
    ("My%20Photo.jpg", "My%20Photo.jpg", "My%20Photo"),
    ("../../etc/passwd.jpg", "passwd.jpg", "passwd"),
    ("C:\\Users\\x\\holiday_2020.jpg", "holiday_2020.jpg", "holiday 2020"),
    ("\u202egpj.exe", "gpj.exe", "gpj"),
    ("...jpg", "...jpg", "upload"),
]


@pytest.mark.parametrize(("sent", "name", "title"), CASES)
def test_names_from_client_file_names(sent: str, name: str, title: str) -> None:
    got = display_name(client_file_name(sent))
    assert got == name
    assert default_title(got) == title
    assert title not in (".", "..") and not title.startswith(("/", "\\", "../"))
    assert all(c.isprintable() for c in got + title)


async def committed(client: Any, token: str, media_id: str) -> dict[str, Any]:
    got = await client.get(f"/api/v1/media/{media_id}", headers=bearer(token))
    assert got.status_code == 200
    return dict(await got.get_json())


async def test_multipart_and_tus_uploads_get_sane_titles(app: QuartTrio, runtime: Runtime) -> None:
    _, token = await add_user(runtime.store, "alice")
    data = jpeg_bytes()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for sent, _, title in CASES[:5]:
            body, ctype = multipart({}, data, filename=sent)
            made = await client.post(
                "/api/v1/media", data=body, headers={**bearer(token), "Content-Type": ctype}
            )
            assert made.status_code == 201, await made.get_data()
            media = await committed(client, token, (await made.get_json())["id"])
            assert media["title"] == title, sent

            url = path_of(
                (await create(client, token, len(data), filename=sent)).headers["Location"]
            )
            done = await patch(client, token, url, 0, data)
            assert done.status_code == 204, await done.get_data()
            media = await committed(client, token, done.headers["Gremlin-Media-Id"])
            assert media["title"] == title, sent

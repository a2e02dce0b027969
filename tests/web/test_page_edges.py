from quart_trio import QuartTrio


async def test_error_pages_have_a_title(app: QuartTrio) -> None:
    response = await app.test_client().get("/m/no-such-media", headers={"Accept": "text/html"})
    assert response.status_code == 404
    page = (await response.get_data()).decode()
    assert "<title>Not found · " in page


async def test_failed_image_page_never_shows_the_original(app: QuartTrio) -> None:
    """A failed image may be a decompression bomb: its page must not make browsers decode it."""
    from gremlin.runtime import Runtime

    from .conftest import add_user, bearer
    from .pagedata import media

    runtime: Runtime = app.extensions["gremlin"]
    owner_id, token = await add_user(runtime.store, "owner")
    mid = await media(
        runtime.store,
        owner_id,
        state="failed",
        files={"original": {"mime": "image/png", "width": 30000, "height": 30000}},
    )
    response = await app.test_client().get(f"/m/{mid}", headers=bearer(token))
    assert response.status_code == 200
    page = (await response.get_data()).decode()
    assert f'<img src="/files/{mid}/original"' not in page
    assert "Processing failed" in page


async def test_401_names_the_bearer_scheme(app: QuartTrio) -> None:
    response = await app.test_client().get(
        "/api/v1/media", headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.get_json())["error"]["code"]

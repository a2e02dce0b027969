"""A server that enters maintenance before it served anything still answers reads."""

from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime


async def test_reads_need_no_write_even_on_the_first_request(
    app: QuartTrio, runtime: Runtime
) -> None:
    async with app.test_app() as test_app:  # start-up made the session secret
        await runtime.store.freeze()  # what a handover does: every write now raises
        runtime.mode = Mode.MAINTENANCE
        client = test_app.test_client()
        assert (await client.get("/healthz")).status_code == 200
        home = await client.get("/")
        assert home.status_code == 200

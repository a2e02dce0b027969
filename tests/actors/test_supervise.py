import pytest
import trio
import trio.testing

from gremlin.actors import supervise


async def test_restarts_a_crashed_actor_with_capped_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    async def flaky(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started("handle")
        if len(starts) < 6:
            raise RuntimeError("crash")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        handle = await nursery.start(
            lambda task_status: supervise(
                flaky,
                name="flaky",
                min_backoff_seconds=1,
                max_backoff_seconds=4,
                task_status=task_status,
            )
        )
        assert handle == "handle"
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [1, 2, 4, 4, 4]  # doubles, then capped
    assert len(starts) == 6  # the sixth run stays up: no further restarts


async def test_clean_return_stops_supervision(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def once(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    await supervise(once, name="once")
    assert runs == 1


async def test_startup_failure_reaches_the_caller() -> None:
    async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise ValueError("cannot start")

    with pytest.RaisesGroup(ValueError, allow_unwrapped=True, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: supervise(broken, name="b", task_status=task_status)
            )


async def test_cancellation_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def forever(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        await trio.sleep_forever()

    with trio.move_on_after(10):
        await supervise(forever, name="f")
    assert runs == 1


async def test_a_full_disk_is_one_log_line_not_a_traceback(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from gremlin.errors import DiskFull

    runs = 0

    async def writer(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs == 1:
            raise OSError(errno.ENOSPC, "No space left on device", "/site/content/x")
        if runs == 2:
            raise DiskFull("/site")
        await trio.sleep_forever()

    with trio.move_on_after(60):
        await supervise(writer, name="writer", min_backoff_seconds=1)
    assert runs == 3
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    assert all(r.exc_info is None for r in errors)
    assert "no space left" in errors[0].getMessage()

"""Eager starts (routing/eager.py): the first step runs inside the caller, the rest in a
task that passes results, failures and cancellation through; the server answers a
request from inside the read callback that parsed it."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.transports import RecordingTransport
from tierserve.routing import eager, server


async def test_the_first_step_runs_before_start_returns_and_the_rest_in_a_task() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    steps: list[str] = []
    ended: list[BaseException | None] = []

    async def work() -> None:
        steps.append("first")
        steps.append(f"got {await fut}")

    eager.start(work(), ended.append)
    assert steps == ["first"] and ended == []  # ran now, suspended at the future
    fut.set_result(7)
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps == ["first", "got 7"] and ended == [None]


async def test_a_coroutine_that_never_waits_ends_inside_start() -> None:
    ended: list[BaseException | None] = []

    async def quick() -> None:
        return None

    eager.start(quick(), ended.append)
    assert ended == [None]


async def test_failures_reach_done_whether_raised_before_or_after_the_first_wait() -> None:
    loop = asyncio.get_running_loop()
    ended: list[BaseException | None] = []

    async def early() -> None:
        raise ValueError("early")

    eager.start(early(), ended.append)
    assert isinstance(ended[0], ValueError)

    fut: asyncio.Future[None] = loop.create_future()

    async def late() -> None:
        try:
            await fut
        except KeyError as exc:
            raise ValueError("late") from exc

    eager.start(late(), ended.append)
    fut.set_exception(KeyError("k"))  # thrown into the coroutine at its await
    for _ in range(5):
        await asyncio.sleep(0)
    assert isinstance(ended[1], ValueError) and str(ended[1]) == "late"


async def test_cancelling_the_continuing_task_cancels_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []
    ended: list[BaseException | None] = []

    async def waits() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    before = asyncio.all_tasks()
    eager.start(waits(), ended.append)
    (task,) = asyncio.all_tasks() - before
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"] and ended == [None]



async def test_the_server_runs_the_handler_inside_the_read_callback() -> None:
    """The handler's first step (for a stream: up to the upstream request's write) runs
    before ``data_received`` returns, not when the event loop gets to a new task."""
    ran: list[str] = []
    release: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(request: server.Request) -> None:
        ran.append(request.path)
        await release
        request.respond(200, b"{}", "application/json")

    srv = server.HttpServer(handler, body_limit=lambda: 1024, new_id=lambda: "id")
    conn = server.Conn(srv)
    transport = RecordingTransport()
    conn.connection_made(transport)
    conn.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 2\r\n\r\n{}")
    assert ran == ["/v1/chat/completions"] and conn.busy
    release.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not conn.busy and transport.written[0].startswith(b"HTTP/1.1 200 OK")

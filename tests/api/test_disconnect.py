"""cancel_on_disconnect: the work's answer, or its cancellation when the client leaves or the handler is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from mmserve.api.disconnect import cancel_on_disconnect


def _request(leave_after_s: float | None) -> Request:
    async def receive() -> dict[str, Any]:
        if leave_after_s is None:
            await asyncio.Event().wait()  # the client stays
        await asyncio.sleep(leave_after_s or 0)
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


async def test_the_work_answers_while_the_client_stays() -> None:
    async def work() -> int:
        await asyncio.sleep(0.01)
        return 42

    assert await cancel_on_disconnect(_request(None), work()) == 42
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []  # the watcher is gone


async def test_a_client_that_leaves_cancels_the_work() -> None:
    ended: list[str] = []

    async def work() -> int:
        try:
            await asyncio.sleep(10)
        finally:
            ended.append("cancelled")
        return 1

    with pytest.raises(ClientDisconnect):
        await cancel_on_disconnect(_request(0.01), work())
    assert ended == ["cancelled"]


async def test_a_cancelled_handler_cancels_the_work_and_waits_for_its_end() -> None:
    ended: list[str] = []

    async def work() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # its clean-up takes a while
            ended.append("cleaned up")
            raise
        return 1

    handler = asyncio.create_task(cancel_on_disconnect(_request(None), work()))
    await asyncio.sleep(0.01)
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert ended == ["cleaned up"]


async def test_a_failing_work_raises_its_error() -> None:
    async def work() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await cancel_on_disconnect(_request(None), work())


async def test_the_work_starts_at_once_in_the_handlers_own_task() -> None:
    """No task of its own: one would start a turn of the event loop later, behind every other callback ready."""
    order: list[str] = []

    async def work() -> asyncio.Task[Any] | None:
        order.append("work")
        return asyncio.current_task()

    asyncio.get_running_loop().call_soon(order.append, "next turn")
    assert await cancel_on_disconnect(_request(None), work()) is asyncio.current_task()
    assert order == ["work"]


async def test_a_client_that_leaves_right_after_the_work_ended_cancels_nothing_later() -> None:
    ended = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await ended.wait()  # the disconnect comes once the work has ended: the watcher ends a turn later
        return {"type": "http.disconnect"}

    async def work() -> int:
        ended.set()
        return 7

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    assert await cancel_on_disconnect(request, work()) == 7
    await asyncio.sleep(0.01)  # a stray cancel of this task would land here
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_handler_cancelled_as_its_client_leaves_is_cancelled_not_a_disconnect() -> None:
    """Both cancels at once (the server shuts down as the client goes): the server's wins."""
    tasks: list[asyncio.Task[int]] = []

    async def work() -> int:
        asyncio.get_running_loop().call_soon(tasks[0].cancel)
        await asyncio.sleep(10)
        return 1

    async def handler() -> int:
        return await cancel_on_disconnect(_request(0), work())

    tasks.append(asyncio.create_task(handler()))
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]


async def test_a_work_that_catches_the_cancel_leaves_its_handler_not_cancelling() -> None:
    async def work() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return 5  # it ends on its own terms (a bug, but not the server's to inherit)
        return 1

    assert await cancel_on_disconnect(_request(0.01), work()) == 5
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0.01)  # and nothing cancels it later

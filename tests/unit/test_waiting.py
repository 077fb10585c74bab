"""The one wait-until helper: returns once the condition holds, and a timeout says why."""

from __future__ import annotations

import pytest

from tierserve.dev.waiting import WaitTimeout, wait_until, wait_until_async


def test_returns_as_soon_as_the_check_holds() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) == 3
    wait_until(third_time, 10, "the third poll", interval=0.001)
    assert len(calls) == 3


def test_timeout_names_what_was_awaited() -> None:
    with pytest.raises(WaitTimeout, match=r"after 0.05s waiting for the moon$"):
        wait_until(lambda: False, 0.05, "the moon", interval=0.01)


def test_os_errors_mean_not_yet_and_the_last_one_is_reported() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("port 1 refused")
    with pytest.raises(WaitTimeout, match=r"the server \(last error: ConnectionRefused"):
        wait_until(refused, 0.05, "the server", interval=0.01)


def test_other_errors_propagate_at_once() -> None:
    calls: list[int] = []

    def broken() -> bool:
        calls.append(1)
        raise KeyError("typo")
    with pytest.raises(KeyError):
        wait_until(broken, 10, "a broken check", interval=0.001)
    assert calls == [1]


def test_a_non_positive_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit_s must be positive"):
        wait_until(lambda: True, 0, "nothing")


async def test_async_accepts_plain_and_awaitable_checks() -> None:
    polls: list[int] = []

    async def ready() -> bool:
        polls.append(1)
        return len(polls) == 2
    await wait_until_async(ready, 10, "the second poll", interval=0.001)
    assert len(polls) == 2
    flag = [False, False, True]
    await wait_until_async(lambda: flag.pop(0), 10, "the flag", interval=0.001)
    assert flag == []


async def test_async_timeout_names_what_was_awaited() -> None:
    async def never() -> bool:
        raise ConnectionResetError("reset")
    with pytest.raises(WaitTimeout, match=r"waiting for the stub \(last error: Connection"):
        await wait_until_async(never, 0.05, "the stub")

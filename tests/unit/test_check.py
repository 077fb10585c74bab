"""``tierserve check leader`` on a fake clock: a holder that renews passes, whatever its
``renewTime`` says (clock skew); a missing, unheld, released or stale Lease fails with
the reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tierserve.cli.check import CheckFailed, check_leader

WHERE = "tierserve-system/tierserve-operator"


def _lease(version: int, holder: str = "op-a", renew: str = "1999-01-01T00:00:00.000000Z",
           duration: int = 15) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(version)},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                     "renewTime": renew}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _reader(leases: list[dict[str, Any] | None]) -> Callable[[], Awaitable[Any]]:
    """Returns the leases in turn, then the last one forever."""
    async def read() -> dict[str, Any] | None:
        return leases.pop(0) if len(leases) > 1 else leases[0]
    return read


async def _check(leases: list[dict[str, Any] | None], clock: Clock | None = None) -> str:
    clock = clock or Clock()
    return await check_leader(_reader(leases), WHERE, clock=clock, sleep=clock.sleep)


async def test_a_renewing_holder_passes_even_with_a_renew_time_years_old() -> None:
    """Only the record's change counts, on the local clock: a skewed holder clock (its
    renewTime in 1999) is no reason to fail."""
    clock = Clock()
    out = await _check([_lease(1), _lease(1), _lease(2)], clock)
    assert out == f"operator op-a leads (renewed Lease {WHERE})"
    assert clock.now == 2.0


async def test_a_holder_that_stopped_renewing_fails_after_the_lease_duration() -> None:
    clock = Clock()
    with pytest.raises(CheckFailed, match="held by op-a was not renewed in 15 s"):
        await _check([_lease(7)], clock)
    assert clock.now == 15.0


@pytest.mark.parametrize(("leases", "reason"), [
    ([None], "no Lease tierserve-system/tierserve-operator: no operator has ever led"),
    ([_lease(1, holder="")], "has no holder: no operator leads"),
    ([_lease(1), _lease(2, holder="")], "was released by op-a"),
    ([_lease(1), None], "was deleted"),
])
async def test_fails_with_the_reason(leases: list[dict[str, Any] | None], reason: str) -> None:
    with pytest.raises(CheckFailed, match=reason):
        await _check(leases)


async def test_a_new_leader_taking_over_passes_naming_it() -> None:
    out = await _check([_lease(1, holder="op-a"), _lease(2, holder="op-b")])
    assert "operator op-b leads" in out

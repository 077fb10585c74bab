"""Leader election (core/kube/leader.py) on a simulated timeline and a fake Lease API.

Each candidate has its own clocks, offset from the timeline by minutes (two machines'
wall clocks disagree, and their monotonic clocks start anywhere): expiry must be judged
by what each candidate observed, so skew neither lets a follower take over a live leader
nor stalls a takeover. Renewal failures shorter than the renew deadline keep leadership;
longer ones lose it before the lease could expire for anyone else. A release hands over
at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError
from tierserve.core.kube.leader import LeaderElector, LeaseTiming, Outcome

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TIMING = LeaseTiming(lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)


class World:
    """One simulated timeline; ``sleep`` advances it (nothing waits in real time)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.end = float("inf")  # sleeping past this raises Enough (ends a hold loop)

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.t > self.end:
            raise Enough
        await asyncio.sleep(0)


class Enough(Exception):
    """The simulated run is over."""


class FakeLeaseApi(KubeApi):
    """Lease storage with resourceVersion checks, like the API server; ``down`` says
    when it refuses connections. A KubeApi so mypy holds it to the real signatures; it
    never connects (no base initialiser)."""

    def __init__(self, down: Callable[[], bool] = lambda: False) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = down

    def _check(self) -> None:
        if self.down():
            raise OSError("connection refused")

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        self._check()
        return self.lease

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ApiError(409, "exists")
        return self._store(manifest)

    async def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if manifest["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "conflict")
        return self._store(manifest)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = {**body, "metadata": {**body["metadata"],
                                           "resourceVersion": str(self.version)}}
        return self.lease

    @property
    def holder(self) -> str:
        assert self.lease is not None
        return str(self.lease["spec"]["holderIdentity"])


def _candidate(world: World, api: KubeApi, identity: str,
               skew_s: float = 0.0) -> LeaderElector:
    """A candidate whose wall and monotonic clocks are ``skew_s`` off the timeline."""
    return LeaderElector(api, "ns", "lease", identity, TIMING,
                         monotonic=lambda: world.t + skew_s,
                         wall=lambda: EPOCH + timedelta(seconds=world.t + skew_s),
                         sleep=world.sleep, jitter=lambda: 0.0)


@pytest.mark.parametrize("skew_s", [-300.0, -90.0, 0.0, 90.0, 300.0])
async def test_clock_skew_neither_takes_over_a_live_leader_nor_stalls(skew_s: float) -> None:
    world, api = World(), FakeLeaseApi()
    a, b = _candidate(world, api, "a"), _candidate(world, api, "b", skew_s)
    assert await a.try_acquire_or_renew() is Outcome.HELD
    for _ in range(60):  # two minutes of a renewing every retry period
        world.t += TIMING.retry_period_s
        assert await a.try_acquire_or_renew() is Outcome.HELD
        assert await b.try_acquire_or_renew() is Outcome.OTHER, f"takeover at {world.t}"
    last_renewal = world.t  # a dies; b saw this renewal at once
    while await b.try_acquire_or_renew() is not Outcome.HELD:
        world.t += TIMING.retry_period_s
        assert world.t - last_renewal <= TIMING.lease_duration_s + TIMING.retry_period_s, \
            "takeover stalled"
    assert world.t - last_renewal >= TIMING.lease_duration_s
    assert api.holder == "b" and b.leading
    assert api.lease is not None and api.lease["spec"]["leaseTransitions"] == 1


async def test_a_new_candidate_waits_a_full_lease_duration_from_its_first_look() -> None:
    """The holder's renewTime is never compared with the local clock: even a record
    whose renewTime is hours old is given a lease duration from when it was first seen."""
    world, api = World(), FakeLeaseApi()
    assert await _candidate(world, api, "a", skew_s=-7200).try_acquire_or_renew() \
        is Outcome.HELD
    world.t += 60
    b = _candidate(world, api, "b")
    first_look = world.t
    while await b.try_acquire_or_renew() is Outcome.OTHER:
        world.t += 1
    assert world.t - first_look == TIMING.lease_duration_s


async def _hold_until(world: World, leader: LeaderElector, end: float) -> bool:
    """Run ``hold`` on the timeline until ``end``; True when it returned (lost)."""
    world.end = end
    try:
        await leader.hold()
    except Enough:
        return False
    return True


@pytest.mark.parametrize("outage_s", [1.0, 5.0, 7.0])
async def test_renewal_failures_shorter_than_the_deadline_keep_leadership(
        outage_s: float) -> None:
    """Renewals run every 2 s: the last before the outage at +2 s, the first after it
    at +10 s at the latest, inside the 10 s deadline."""
    world = World()
    start = world.t + 2.5
    api = FakeLeaseApi(down=lambda: start <= world.t < start + outage_s)
    a = _candidate(world, api, "a")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    assert await _hold_until(world, a, world.t + 60) is False
    assert a.leading and api.holder == "a"


@pytest.mark.parametrize("outage_s", [10.5, 30.0, float("inf")])
async def test_renewal_failures_past_the_deadline_lose_leadership_before_expiry(
        outage_s: float) -> None:
    world = World()
    api = FakeLeaseApi()
    a = _candidate(world, api, "a")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    start = world.t + 0.5  # the last renewal succeeded at world.t
    api.down = lambda: start <= world.t < start + outage_s
    last_renewal = world.t
    assert await _hold_until(world, a, world.t + 120) is True
    assert not a.leading
    stepped_down_after = world.t - last_renewal
    assert TIMING.renew_deadline_s <= stepped_down_after < TIMING.lease_duration_s


async def test_another_holder_in_the_lease_ends_leadership_at_once() -> None:
    world, api = World(), FakeLeaseApi()
    a = _candidate(world, api, "a")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    assert api.lease is not None
    api._store({**api.lease, "spec": {**api.lease["spec"], "holderIdentity": "x"}})
    assert await _hold_until(world, a, world.t + 60) is True
    assert world.t - 1000.0 == TIMING.retry_period_s  # the first renewal round saw it


async def test_release_clears_the_holder_so_the_next_candidate_takes_over_at_once() -> None:
    world, api = World(), FakeLeaseApi()
    a, b = _candidate(world, api, "a"), _candidate(world, api, "b")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    assert await b.try_acquire_or_renew() is Outcome.OTHER
    assert await a.release() is True
    assert api.holder == "" and not a.leading
    assert await b.try_acquire_or_renew() is Outcome.HELD  # no time has passed
    assert await a.release() is False  # not leading: nothing to release
    assert api.holder == "b"


async def test_release_never_clears_another_candidates_lease() -> None:
    world, api = World(), FakeLeaseApi()
    a = _candidate(world, api, "a")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    assert api.lease is not None
    api._store({**api.lease, "spec": {**api.lease["spec"], "holderIdentity": "x"}})
    assert await a.release() is False
    assert api.holder == "x"


async def test_release_with_the_api_server_gone_reports_false() -> None:
    world, api = World(), FakeLeaseApi()
    a = _candidate(world, api, "a")
    assert await a.try_acquire_or_renew() is Outcome.HELD
    api.down = lambda: True
    assert await a.release() is False


async def test_acquire_retries_through_an_outage_and_a_held_lease() -> None:
    world = World()
    api = FakeLeaseApi(down=lambda: world.t < 1010)
    b = _candidate(world, api, "b")
    await b.acquire()
    assert world.t >= 1010 and api.holder == "b"


def test_lease_timing_rejects_durations_client_go_rejects() -> None:
    with pytest.raises(ValueError, match=r"lease duration \(10 s\).*renew deadline \(10 s\)"):
        LeaseTiming(lease_duration_s=10, renew_deadline_s=10, retry_period_s=2)
    with pytest.raises(ValueError, match=r"renew deadline \(2 s\).*retry period \(2 s\)"):
        LeaseTiming(lease_duration_s=15, renew_deadline_s=2, retry_period_s=2)

"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

kopf's peering only pauses lower-priority peers and holds no per-object lock, so two
operator replicas could both act on one object. A Lease fixes that: only the holder runs
the controllers; the others wait, and take over once the holder stops renewing.
Optimistic concurrency (``resourceVersion`` on update) means at most one candidate wins
each round.

What follows client-go's ``leaderelection`` package, and why:

* **Expiry is judged by local observation, never by the remote ``renewTime``.** A
  candidate notes, on its own monotonic clock, when it last saw the Lease record change;
  the holder counts as alive until ``leaseDurationSeconds`` after that. Comparing the
  holder's ``renewTime`` with the local wall clock would let a clock a few minutes ahead
  take over a live leader (two leaders) and one behind wait minutes after a real failure.
* **Three durations** (:class:`LeaseTiming`): followers retry every ``retry_period_s``
  (jittered); the leader renews every ``retry_period_s`` and steps down when no renewal
  has succeeded for ``renew_deadline_s``, which is shorter than ``lease_duration_s`` so
  the old leader has stopped before anyone else may take over. One failed renewal loses
  nothing; each attempt is bounded by the time left until the deadline, so a hanging API
  server cannot keep a leader past it.
* **Release on shutdown**: :meth:`LeaderElector.release` clears ``holderIdentity`` (and
  sets a 1 s duration), so the next candidate takes over at its next retry instead of
  waiting out the lease.

The clocks and the sleep are injected so tests drive time (and skew) themselves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import aiohttp

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict

API = "coordination.k8s.io/v1"
JITTER = 1.2  # client-go's JitterFactor: followers wait retry * (1 + JITTER * rand)
FAILURES = (ApiError, OSError, aiohttp.ClientError, TimeoutError)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's LeaseDuration, RenewDeadline and RetryPeriod, in seconds."""

    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if self.lease_duration_s <= self.renew_deadline_s:
            raise ValueError(f"lease duration ({self.lease_duration_s:g} s) must be longer "
                             f"than the renew deadline ({self.renew_deadline_s:g} s)")
        if self.renew_deadline_s <= JITTER * self.retry_period_s:
            raise ValueError(f"renew deadline ({self.renew_deadline_s:g} s) must be longer "
                             f"than {JITTER} x the retry period ({self.retry_period_s:g} s)")


class Outcome(Enum):
    HELD = "held"  # we hold the Lease (created, renewed or taken over)
    OTHER = "other"  # another candidate holds a valid Lease
    FAILED = "failed"  # the API server did not answer, refused, or another write won


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str,
                 timing: LeaseTiming | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.timing = timing or LeaseTiming()
        self._monotonic, self._wall, self._sleep, self._jitter = monotonic, wall, sleep, jitter
        self._observed_version: str | None = None  # the record as last seen ...
        self._observed_at = 0.0  # ... and when (local monotonic), the basis of expiry
        self._renewed_at: float | None = None  # our last successful write as holder

    @property
    def leading(self) -> bool:
        return self._renewed_at is not None

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, now

    def _valid(self, spec: dict[str, Any], now: float) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.timing.lease_duration_s
        return bool(now < self._observed_at + float(duration))

    def _body(self, spec: dict[str, Any], version: str | None, holder: str,
              renewing: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version:
            meta["resourceVersion"] = version
        now = _fmt(self._wall())
        transitions = int(spec.get("leaseTransitions") or 0)
        return {"apiVersion": API, "kind": "Lease", "metadata": meta, "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, round(self.timing.lease_duration_s)),
            "acquireTime": (spec.get("acquireTime") or now) if renewing else now,
            "renewTime": now,
            "leaseTransitions": transitions if renewing or version is None else transitions + 1,
        }}

    async def try_acquire_or_renew(self) -> Outcome:
        """One round: create, renew or take over the Lease (client-go's
        ``tryAcquireOrRenew``). API errors propagate; a lost write race is FAILED."""
        lease = await self.api.get(API, "Lease", self.namespace, self.name)
        try:
            if lease is None:
                written = await self.api.create(self._body({}, None, self.identity, False))
            else:
                self._observe(lease, self._monotonic())
                spec = lease.get("spec") or {}
                holder = spec.get("holderIdentity") or ""
                if holder and holder != self.identity and self._valid(spec, self._monotonic()):
                    return Outcome.OTHER
                version = str(lease["metadata"]["resourceVersion"])
                written = await self.api.replace(
                    self._body(spec, version, self.identity, holder == self.identity))
        except Conflict:  # another candidate wrote first; the next round re-reads
            return Outcome.FAILED
        now = self._monotonic()
        self._observe(written, now)
        self._renewed_at = now
        return Outcome.HELD

    async def _attempt(self, timeout_s: float) -> Outcome:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout_s)
        except FAILURES as exc:
            log.warning("Lease %s/%s: attempt failed: %s", self.namespace, self.name,
                        str(exc) or type(exc).__name__)
            return Outcome.FAILED

    async def acquire(self) -> None:
        """Until we hold the Lease: one attempt every jittered retry period."""
        while await self._attempt(self.timing.renew_deadline_s) is not Outcome.HELD:
            await self._sleep(self.timing.retry_period_s * (1 + JITTER * self._jitter()))

    async def hold(self) -> None:
        """Renew every retry period; returns when leadership is lost: another candidate
        holds the Lease, or no renewal succeeded for the renew deadline."""
        while self._renewed_at is not None:
            await self._sleep(self.timing.retry_period_s)
            left = self._renewed_at + self.timing.renew_deadline_s - self._monotonic()
            outcome = await self._attempt(left) if left > 0 else Outcome.FAILED
            if outcome is Outcome.OTHER or (outcome is Outcome.FAILED
                                            and self._deadline_passed()):
                log.error("Lease %s/%s: leadership lost (%s)", self.namespace, self.name,
                          "another candidate holds it" if outcome is Outcome.OTHER else
                          f"no renewal for {self.timing.renew_deadline_s:g} s")
                self._renewed_at = None

    def _deadline_passed(self) -> bool:
        assert self._renewed_at is not None
        return self._monotonic() >= self._renewed_at + self.timing.renew_deadline_s

    async def release(self) -> bool:
        """Give the Lease up on shutdown: clear ``holderIdentity`` so the next candidate
        takes over at once. Only while we hold it; False when it could not be written."""
        if self._renewed_at is None:
            return False
        self._renewed_at = None
        try:
            return await asyncio.wait_for(self._release(), self.timing.renew_deadline_s)
        except FAILURES as exc:
            log.warning("Lease %s/%s: not released: %s", self.namespace, self.name, exc)
            return False

    async def _release(self) -> bool:
        lease = await self.api.get(API, "Lease", self.namespace, self.name)
        spec = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            return False
        body = self._body(spec, str(lease["metadata"]["resourceVersion"]), "", True)
        body["spec"].update(leaseDurationSeconds=1, acquireTime=body["spec"]["renewTime"])
        await self.api.replace(body)
        log.info("Lease %s/%s released", self.namespace, self.name)
        return True

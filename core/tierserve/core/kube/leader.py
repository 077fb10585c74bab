"""Leader election on a ``coordination.k8s.io/v1`` Lease.

kopf's peering only pauses lower-priority peers and holds no per-object lock, so two
operator replicas could both act on one object. A Lease fixes that: only the holder runs
the controllers; the others wait, and take over once the holder stops renewing.
Optimistic concurrency (``resourceVersion`` on update) means at most one candidate wins
each round. The clock is injected so tests can drive expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict

API = "coordination.k8s.io/v1"


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str) -> datetime:
    return datetime.strptime(s.replace("Z", ""), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


class LeaderElector:
    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str,
                 lease_seconds: int = 15, renew_seconds: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_seconds, self.clock = lease_seconds, renew_seconds, clock

    def _body(self, resource_version: str | None, acquired: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": API, "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.identity,
                         "leaseDurationSeconds": self.lease_seconds,
                         "acquireTime": acquired, "renewTime": _fmt(self.clock())}}

    def _expired(self, spec: dict[str, Any]) -> bool:
        renew = spec.get("renewTime")
        if not renew:
            return True
        duration = timedelta(seconds=spec.get("leaseDurationSeconds") or self.lease_seconds)
        return _parse(renew) + duration < self.clock()

    async def try_acquire(self) -> bool:
        """One round: create, renew or take over the Lease. True when we hold it."""
        lease = await self.api.get(API, "Lease", self.namespace, self.name)
        try:
            if lease is None:
                await self.api.create(self._body(None, _fmt(self.clock())))
                return True
            spec = lease.get("spec") or {}
            mine = spec.get("holderIdentity") == self.identity
            if not mine and not self._expired(spec):
                return False
            acquired = spec.get("acquireTime") if mine else _fmt(self.clock())
            await self.api.replace(self._body(lease["metadata"]["resourceVersion"],
                                              acquired or _fmt(self.clock())))
            return True
        except Conflict:  # another candidate won this round
            return False

    async def acquire(self) -> None:
        while not await self.try_acquire():
            await asyncio.sleep(self.renew_seconds)

    async def hold(self) -> None:
        """Renew until a renewal fails; returns when leadership is lost."""
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                if not await self.try_acquire():
                    return
            except (ApiError, OSError):
                return

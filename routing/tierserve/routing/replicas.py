"""Router replicas in cluster mode: which there are, and which one writes ``status.ab``.

Several replicas of the router behind one Service each see part of the traffic, so each
holds part of the A/B statistics and would write a readout of its own part (the last
writer winning). :class:`RouterReplicas` fixes that:

* the replicas are the ready endpoints of the router's own Service, kept by one
  :class:`~tierserve.core.kube.reflector.Reflector` on its EndpointSlices (label
  ``kubernetes.io/service-name=<service>``); their count divides each API key's limits
  (``auth.replicas``, :func:`tierserve.routing.auth.replica_share`);
* one of them is elected the status writer with a Lease, ``<service>-ab-writer`` in the
  Service's namespace (:class:`~tierserve.core.kube.leader.LeaderElector`); the others
  never write;
* the writer asks every ready replica, itself included, for its statistics
  (``GET /internal/ab``, :meth:`tierserve.routing.app.Router.ab_statistics`) and reports
  the merged readout (:func:`tierserve.routing.abtest.merged`). When one of them does not
  answer, it writes nothing that round rather than a readout of part of the traffic.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import TypeAdapter, ValidationError

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError
from tierserve.core.kube.leader import LeaderElector, LeaseTiming
from tierserve.core.kube.reflector import Reflector, Resource
from tierserve.routing.abtest import VariantWire
from tierserve.routing.handlers import AB_STATISTICS_PATH
from tierserve.routing.kubeconfig import SERVICE_NAME_LABEL, slice_endpoints

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Statistics = dict[str, dict[str, VariantWire]]  # route model -> variant -> statistics
_STATISTICS = TypeAdapter(Statistics)
_ELECTION_ERRORS = (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError)


@dataclass(frozen=True)
class RouterService:
    """The router's own Service: its endpoints are the router replicas."""

    namespace: str
    name: str
    port_name: str = "http"  # the chart's router Service port
    default_port: int = 8080

    @property
    def lease(self) -> str:
        return f"{self.name}-ab-writer"

    @classmethod
    def parse(cls, value: str) -> RouterService:
        """``NAMESPACE/NAME``; a clear error naming the bad value otherwise."""
        namespace, sep, name = value.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"the router Service must be NAMESPACE/NAME, got {value!r}")
        return cls(namespace, name)


def ready_replicas(slices: Iterable[Obj], service: RouterService) -> list[str]:
    """Base URLs of the Service's ready endpoints: the router replicas in rotation."""
    return [e.url for e in slice_endpoints(slices, service.port_name, service.default_port)
            if e.ready]


def replica_count(slices: Iterable[Obj], service: RouterService) -> int:
    """How many replicas share the per-key limits: the ready ones, at least this one."""
    return max(1, len(ready_replicas(slices, service)))


def default_identity() -> str:
    """Unique per process (two replicas may share a host name): host name and a suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class RouterReplicas:
    """The replicas of one router Service, its A/B status writer election, their counts.

    ``resolve`` maps an endpoint's URL to the one to connect to (the identity in a
    cluster, where pod addresses are reachable). Subscribe to :attr:`slices` to hear of
    replicas coming and going.
    """

    def __init__(self, api: KubeApi, service: RouterService, *,
                 identity: str | None = None, timing: LeaseTiming | None = None,
                 fetch_timeout_s: float = 5.0,
                 resolve: Callable[[str], str] = lambda url: url) -> None:
        self.service = service
        self.identity = identity or default_identity()
        self.slices = Reflector(api, Resource(
            "discovery.k8s.io/v1", "EndpointSlice", service.namespace,
            label_selector=f"{SERVICE_NAME_LABEL}={service.name}"))
        self.elector = LeaderElector(api, service.namespace, service.lease, self.identity,
                                     timing)
        self._timeout_s, self._resolve = fetch_timeout_s, resolve
        self._session: aiohttp.ClientSession | None = None

    @property
    def leading(self) -> bool:
        """This replica writes status.ab (it holds the Lease)."""
        return self.elector.leading

    def urls(self) -> list[str]:
        return ready_replicas(self.slices.objects.values(), self.service)

    def count(self) -> int:
        return replica_count(self.slices.objects.values(), self.service)

    async def run(self) -> None:
        """Take part in the writer election until cancelled."""
        try:
            while True:
                await self._term()
        finally:
            # On shutdown hand the Lease over at once instead of after its duration, also
            # when whoever cancelled us cancels again (release is bounded by its deadline).
            stopping = asyncio.ensure_future(self._stop())
            try:
                await asyncio.shield(stopping)
            except asyncio.CancelledError:
                await stopping
                raise

    async def _stop(self) -> None:
        await self.elector.release()
        await self.close()

    async def close(self) -> None:
        """Close the connections to the other replicas (:meth:`run` does on its way out)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _term(self) -> None:
        """Wait for the Lease, then write until it is lost."""
        try:
            await self.elector.acquire()
            log.info("writing status.ab as %s (Lease %s/%s)", self.identity,
                     self.service.namespace, self.service.lease)
            await self.elector.hold()
            log.info("no longer the status.ab writer (%s)", self.identity)
        except _ELECTION_ERRORS as exc:  # the elector retries these itself; a safety net
            log.warning("A/B writer election (Lease %s/%s): %s", self.service.namespace,
                        self.service.lease, exc)
            await asyncio.sleep(self.elector.timing.retry_period_s)

    async def statistics(self) -> list[Statistics] | None:
        """Every ready replica's A/B statistics; ``None`` when there is none or one did
        not answer (the readout would miss part of the traffic)."""
        urls = self.urls()
        if not urls:
            log.warning("router Service %s/%s has no ready endpoint; status.ab not written",
                        self.service.namespace, self.service.name)
            return None
        got = await asyncio.gather(*(self._fetch(u) for u in urls))
        return None if any(s is None for s in got) else [s for s in got if s is not None]

    async def _fetch(self, url: str) -> Statistics | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        try:
            async with self._session.get(self._resolve(url) + AB_STATISTICS_PATH) as resp:
                resp.raise_for_status()
                return _STATISTICS.validate_json(await resp.read())
        except (aiohttp.ClientError, OSError, TimeoutError, ValidationError) as exc:
            log.warning("A/B statistics of router replica %s not read (status.ab not "
                        "written this round): %s", url, str(exc)[:500])
            return None


def route_parts(statistics: Iterable[Statistics], model: str) -> list[Mapping[str, VariantWire]]:
    """The replicas' statistics of one route (replicas that do not serve it left out)."""
    return [s[model] for s in statistics if model in s]

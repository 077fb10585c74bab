"""Two router replicas behind one Service, against the real API server: both serve traffic,
exactly one (the holder of the writer Lease) writes ``status.ab``, the readout counts the
traffic of both, a key's limit holds across the two, and the other replica takes over
the writing when the writer stops.

The replicas run in this process (each its own :class:`Router` served over HTTP, its
own ``ClusterSource`` and its own client under the chart's ``tierserve-router``
ServiceAccount). The router Service's EndpointSlice lists two pod addresses: the API
server refuses loopback addresses in slices, so ``resolve`` maps each pod address to its
replica's port here, which is what the cluster network does for pods. The backend is the
stub OpenAI server behind two LLMDeployments whose ``status.endpoint`` the test writes
(the router reads status; no operator is needed).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials
from tierserve.core.kube.leader import LeaseTiming
from tierserve.core.routerconfig import RouterConfig
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.testing import serve_router, stub
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.app import Router
from tierserve.routing.cluster import ClusterSource
from tierserve.routing.replicas import RouterReplicas, RouterService

pytestmark = pytest.mark.cluster

MODEL = "chat"
API = "tierserve.io/v1alpha1"
PODS = ("10.244.250.1", "10.244.250.2")  # the router Service's endpoints
LIMITED, OPEN = "sk-e2e-limited-7d1c", "sk-e2e-open-52ab"
# client-go's defaults: a loaded machine's stalls do not cost the writer its Lease, and
# the handover needs no expiry (the stopping writer releases it)
TIMING = LeaseTiming(lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)


def _objects(ns: str) -> list[dict[str, Any]]:
    def deployment(name: str) -> dict[str, Any]:
        return {"apiVersion": API, "kind": "LLMDeployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"model": {"name": f"{name}-model", "uri": "hf://org/m",
                                   "parametersBillions": 8},
                         "runtime": "rayServe", "engine": "simulated",
                         "engineProfile": "llama-3.1-8b-h100",
                         "accelerator": {"type": "H100-SXM", "gpusPerReplica": 1},
                         "replicas": 1, "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}}}
    route = {"apiVersion": API, "kind": "LLMRoute",
             "metadata": {"name": "chat-ab", "namespace": ns},
             "spec": {"model": MODEL, "variants": [
                 {"name": "blue", "deployment": "blue", "weight": 50},
                 {"name": "green", "deployment": "green", "weight": 50}]}}
    keys = {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "router-keys", "namespace": ns, "annotations": {
                "tierserve.io/api-key-limits": '{"limited": {"requestsPerMinute": 2}}'}},
            "stringData": {"limited": LIMITED, "open": OPEN}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "router",
                                                                   "namespace": ns},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    endpoints = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "router-e2e", "namespace": ns, "labels": {
                     "kubernetes.io/service-name": "router",
                     "endpointslice.kubernetes.io/managed-by": "e2e"}},
                 "addressType": "IPv4",
                 "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in PODS],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    return [deployment("blue"), deployment("green"), route, keys, service, endpoints,
            *_router_access(ns)]


def _router_access(ns: str) -> list[dict[str, Any]]:
    """What the chart grants the router in its own namespace (the writer Lease:
    ``router-replicas.yaml``) and with ``router.apiKeysSecret`` (one Secret), here in the
    test's namespace."""
    meta = {"name": "router-e2e", "namespace": ns}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "verbs": ["create"]},
                      {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "resourceNames": ["router-ab-writer"], "verbs": ["get", "update"]},
                      {"apiGroups": [""], "resources": ["secrets"],
                       "resourceNames": ["router-keys"], "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                             "kind": "Role", "name": "router-e2e"},
               "subjects": [{"kind": "ServiceAccount", "name": "tierserve-router",
                             "namespace": "tierserve-system"}]}
    return [role, binding]


@dataclass
class Replica:
    identity: str
    router: Router
    url: str
    source: ClusterSource
    task: asyncio.Task[None]

    async def get(self, http: aiohttp.ClientSession, path: str) -> str:
        async with http.get(self.url + path) as resp:
            assert resp.status == 200, path
            return await resp.text()

    async def counts(self, http: aiohttp.ClientSession) -> Counter[str]:
        """``tierserve_router_requests_total`` of the route, per variant."""
        out: Counter[str] = Counter()
        for family in text_string_to_metric_families(await self.get(http, "/metrics")):
            for s in family.samples:
                if (s.name == "tierserve_router_requests_total" and s.labels["route"] == MODEL
                        and s.labels["variant"]):
                    out[s.labels["variant"]] += int(s.value)
        return out

    async def metric(self, http: aiohttp.ClientSession, name: str) -> float:
        text = await self.get(http, "/metrics")
        return next(s.value for f in text_string_to_metric_families(text)
                    for s in f.samples if s.name == name)


@asynccontextmanager
async def replicas(kubeconfig: Path, ns: str) -> AsyncIterator[list[Replica]]:
    """Two router replicas of the Service ``router`` (stopped on the way out)."""
    where: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        made: list[Replica] = []
        for i, pod in enumerate(PODS):
            credentials = await Credentials.from_kubeconfig(str(kubeconfig))
            api = await KubeApi.connect(credentials=credentials)
            stack.push_async_callback(api.close)
            router = Router(RouterConfig())
            url = await stack.enter_async_context(serve_router(router))
            where[f"http://{pod}:8080"] = url
            peers = RouterReplicas(api, RouterService(ns, "router"), identity=f"replica-{i}",
                                   timing=TIMING, resolve=where.__getitem__)
            source = ClusterSource(api, router, ns, debounce_s=0.05, ab_interval_s=1,
                                   api_keys_secret=(ns, "router-keys"), replicas=peers)
            made.append(Replica(f"replica-{i}", router, url, source,
                                asyncio.create_task(source.run())))
        try:
            yield made
        finally:
            for r in made:
                r.task.cancel()
            await asyncio.gather(*(r.task for r in made), return_exceptions=True)


async def _ask(http: aiohttp.ClientSession, replica: Replica, key: str,
               stream: bool = False) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "say hello"}],
            "max_tokens": 8, "stream": stream}
    async with http.post(replica.url + "/v1/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        await resp.read()
        return resp.status


async def _traffic(http: aiohttp.ClientSession, replica: Replica, n: int) -> None:
    for i in range(n):
        assert await _ask(http, replica, OPEN, stream=i % 3 == 0) == 200


async def _readout(api: KubeApi, ns: str) -> dict[str, int]:
    route = await api.get(API, "LLMRoute", ns, "chat-ab") or {}
    ab = (route.get("status") or {}).get("ab") or {}
    return {v["name"]: v["requests"] for v in ab.get("variants", [])}


async def _holder(api: KubeApi, ns: str) -> str | None:
    lease = await api.get("coordination.k8s.io/v1", "Lease", ns, "router-ab-writer")
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


async def _equal(api: KubeApi, ns: str, total: dict[str, int]) -> bool:
    return await _readout(api, ns) == total


async def _is_holder(api: KubeApi, ns: str, identity: str) -> bool:
    return await _holder(api, ns) == identity


async def test_two_router_replicas_one_readout_one_writer_shared_limits(
        cluster: ClusterHandle, installed: Path, namespace: str, tmp_path: Path) -> None:
    from e2e.helm_install import service_account_kubeconfig

    ns = namespace
    cluster.apply(_objects(ns))
    admin = await KubeApi.connect(credentials=await Credentials.from_kubeconfig(
        str(cluster.kubeconfig)))
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "router-kubeconfig",
                                            "tierserve-router")
    async with AsyncExitStack() as stack:
        stack.push_async_callback(admin.close)
        _stub, upstream = await stack.enter_async_context(stub())
        for name in ("blue", "green"):
            await admin.patch_status(API, "LLMDeployment", ns, name,
                                     {"endpoint": upstream + "/v1", "readyReplicas": 1})
        http = await stack.enter_async_context(aiohttp.ClientSession())
        a, b = await stack.enter_async_context(replicas(kubeconfig, ns))
        await wait_until_async(
            lambda: all(MODEL in r.router.snapshot.routes
                        and r.router.snapshot.config.auth.replicas == 2 for r in (a, b)),
            60, "both replicas serve the route and share the key limits by 2")

        # A key's limit (2 a minute) holds across the two: one request on each replica,
        # then both refuse (each enforces half; a token refills in 60 s).
        statuses = [await _ask(http, r, LIMITED) for r in (a, b, a, b)]
        assert statuses == [200, 200, 429, 429], statuses

        await _traffic(http, a, 12)
        await _traffic(http, b, 20)
        counts = [await r.counts(http) for r in (a, b)]
        assert all(sum(c.values()) > 0 for c in counts), counts  # both served traffic
        total = dict(counts[0] + counts[1])
        await wait_until_async(lambda: _equal(admin, ns, total), 60,
                               f"status.ab shows both replicas' counts {total}", interval=0.2)

        holder = await _holder(admin, ns)
        writer, other = (a, b) if holder == a.identity else (b, a)
        assert holder == writer.identity, holder
        assert await writer.metric(http, "tierserve_router_ab_writer") == 1
        assert await other.metric(http, "tierserve_router_ab_writer") == 0
        assert await writer.metric(http, "tierserve_router_ab_status_writes_total") >= 1
        assert await other.metric(http, "tierserve_router_ab_status_writes_total") == 0

        # The writer stops (its Lease released, its server still in the Service): the
        # other replica takes over and keeps the readout at both replicas' counts.
        writer.task.cancel()
        await asyncio.gather(writer.task, return_exceptions=True)
        assert await _holder(admin, ns) != writer.identity  # released, not left to expire
        await wait_until_async(lambda: _is_holder(admin, ns, other.identity), 30,
                               f"{other.identity} holds the writer Lease", interval=0.2)
        await _traffic(http, other, 6)
        total = dict(await a.counts(http) + await b.counts(http))
        await wait_until_async(lambda: _equal(admin, ns, total), 60,
                               f"status.ab shows both replicas' counts {total} after the "
                               "handover", interval=0.2)
        assert await other.metric(http, "tierserve_router_ab_status_writes_total") >= 1

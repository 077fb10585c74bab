"""``router_config``: LLMRoute / LLMDeployment / EndpointSlice dicts -> RouterConfig."""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tierserve.core.kube.client import KubeApi
from tierserve.core.routerconfig import DeploymentConfig, RouterConfig, ServerConfig
from tierserve.dev.testing import serve_router, stub
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.abtest import AbRecorder
from tierserve.routing.app import Router
from tierserve.routing.cluster import ClusterSource, ab_status
from tierserve.routing.errors import RouterError
from tierserve.routing.kubeconfig import (
    API_KEY_LIMITS_ANNOTATION,
    api_keys,
    route_owners,
    router_config,
)

NS = "team"


def deployment(name: str, runtime: str = "triton", *, model: str = "llama/3.1-8b",
               endpoint: str | None = None, ready: int = 1, sizing: bool = True,
               ns: str = NS, deleting: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"readyReplicas": ready}
    if endpoint is not None:
        status["endpoint"] = endpoint
    if sizing:
        status["sizing"] = {
            "gpusPerReplica": 2, "weightsGib": 16, "kvCacheGib": 40, "kvBytesPerToken": 1000,
            "maxBatchPerReplica": 64, "estTpotMs": 20, "estTtftMs": 200,
            "tokensPerSecondPerReplica": 2500.0, "requestsPerSecondPerReplica": 5,
            "costPerMillionTokensUsd": 0.4}
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": meta,
            "spec": {"model": {"name": model, "uri": "hf://org/m", "parametersBillions": 8},
                     "runtime": runtime, "engine": "simulated",
                     "accelerator": {"type": "H100-SXM", "gpusPerReplica": "auto"},
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}},
            "status": status}


def route(name: str, spec: dict[str, Any], *, ns: str = NS,
          created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": spec}


def ab_spec(a: str = "a", b: str = "b", weights: tuple[int, int] | None = (80, 20),
            **extra: Any) -> dict[str, Any]:
    variants: list[dict[str, Any]] = [{"name": "va", "deployment": a},
                                      {"name": "vb", "deployment": b}]
    if weights is not None:
        for v, w in zip(variants, weights, strict=True):
            v["weight"] = w
    return {"model": "chat", "variants": variants, **extra}


def endpoint_slice(service: str, addresses: list[tuple[str, bool | None]], *,
                   port: tuple[str, int] | None = ("http", 8000),
                   ns: str = NS) -> dict[str, Any]:
    eps = []
    for address, ready in addresses:
        ep: dict[str, Any] = {"addresses": [address]}
        if ready is not None:
            ep["conditions"] = {"ready": ready}
        eps.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-x1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": port[0], "port": port[1]}] if port else []}


def dep(config: RouterConfig, name: str) -> DeploymentConfig:
    return config.deployment(f"{NS}/{name}")


def test_variants_weights_sticky_and_protocols() -> None:
    cfg = router_config(
        [route("r", ab_spec(stickySession={"header": "x-user-id"}))],
        [deployment("a", "triton", model="llama/3.1-8b", endpoint="http://127.0.0.1:9001"),
         deployment("b", "rayServe", endpoint="http://127.0.0.1:9002/v1")], [])
    (r,) = cfg.routes
    assert r.model == "chat" and r.sticky_header == "x-user-id"
    assert [(v.name, v.weight, v.deployment) for v in r.variants] == [
        ("va", 80, "team/a"), ("vb", 20, "team/b")]
    a, b = dep(cfg, "a"), dep(cfg, "b")
    assert (a.protocol, a.served_model) == ("triton", "llama--3.1-8b")
    assert (b.protocol, b.served_model) == ("openai", "llama/3.1-8b")
    assert [e.url for e in a.endpoints] == ["http://127.0.0.1:9001"]
    assert [e.url for e in b.endpoints] == ["http://127.0.0.1:9002"]  # /v1 added by router
    assert (a.gpu_type, a.gpus_per_replica, a.tokens_per_s_per_replica) == (
        "H100-SXM", 2, 2500.0)


def test_unweighted_variants_split_evenly() -> None:
    cfg = router_config([route("r", ab_spec(weights=None))],
                        [deployment("a"), deployment("b")], [])
    assert [v.weight for v in cfg.routes[0].variants] == [1.0, 1.0]


def test_weight_zero_is_kept() -> None:
    cfg = router_config([route("r", ab_spec(weights=(100, 0)))],
                        [deployment("a"), deployment("b")], [])
    assert [v.weight for v in cfg.routes[0].variants] == [100, 0]


def test_retries_and_timeouts() -> None:
    spec = ab_spec(retries={"attempts": 3, "budgetPercent": 10},
                   timeouts={"requestMs": 45_000, "firstTokenMs": 5_000})
    cfg = router_config([route("r", spec)], [deployment("a"), deployment("b")], [])
    r = cfg.routes[0]
    assert (r.timeout_s, r.stream_idle_timeout_s) == (45.0, 5.0)
    assert dep(cfg, "a").retry.max_attempts == 4
    assert dep(cfg, "a").retry.budget_ratio == pytest.approx(0.1)


def test_shared_deployment_takes_the_strictest_retries() -> None:
    r1 = route("r1", ab_spec(retries={"attempts": 3, "budgetPercent": 50}))
    r2 = route("r2", {"model": "other", "variants": [{"name": "only", "deployment": "a"}],
                      "retries": {"attempts": 0, "budgetPercent": 60}})
    cfg = router_config([r1, r2], [deployment("a"), deployment("b")], [])
    assert dep(cfg, "a").retry.max_attempts == 1
    assert dep(cfg, "a").retry.budget_ratio == pytest.approx(0.5)
    assert dep(cfg, "b").retry.max_attempts == 4


def test_tiers() -> None:
    spec = {"model": "assistant", "tiers": {"fast": "a", "slow": "b", "policy": {
        "classifier": "embedding", "slowShare": 0.25,
        "escalateOn": ["error", "lowConfidence"], "fastTimeoutMs": 1500,
        "confidenceThreshold": 0.5}}}
    cfg = router_config([route("t", spec)], [deployment("a"), deployment("b")], [])
    (v,) = cfg.routes[0].variants
    assert v.tiers is not None
    assert (v.tiers.fast, v.tiers.slow) == ("team/a", "team/b")
    assert v.tiers.classifier == "embedding"
    assert v.tiers.target_slow_share == 0.25
    assert v.tiers.escalate_on == frozenset({"error", "low_confidence"})
    assert v.tiers.fast_timeout_s == 1.5
    assert v.tiers.min_mean_logprob == pytest.approx(math.log(0.5))
    assert v.tiers.stream_escalation == "before-first-byte"


def test_tiers_stream_escalation_buffer() -> None:
    spec = {"model": "assistant", "tiers": {"fast": "a", "slow": "b",
                                            "policy": {"streamEscalation": "buffer"}}}
    cfg = router_config([route("t", spec)], [deployment("a"), deployment("b")], [])
    (v,) = cfg.routes[0].variants
    assert v.tiers is not None and v.tiers.stream_escalation == "buffer"


def test_endpoint_slices_win_over_status_endpoint() -> None:
    slices = [endpoint_slice("a", [("10.0.0.1", True), ("10.0.0.2", False),
                                   ("10.0.0.3", None)]),
              endpoint_slice("b-serve-svc", [("10.0.1.1", True)], port=("serve", 8000)),
              endpoint_slice("unrelated", [("10.9.9.9", True)])]
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a", endpoint="http://a.team.svc:8000"),
                         deployment("b", "rayServe", endpoint="http://b-serve-svc:8000")],
                        slices)
    assert [(e.url, e.ready) for e in dep(cfg, "a").endpoints] == [
        ("http://10.0.0.1:8000", True), ("http://10.0.0.2:8000", False),
        ("http://10.0.0.3:8000", True)]
    assert [e.url for e in dep(cfg, "b").endpoints] == ["http://10.0.1.1:8000"]


def test_slice_port_by_name_and_ipv6() -> None:
    s = endpoint_slice("a", [("fd00::1", True)], port=("http", 8000))
    s["ports"] = [{"name": "grpc", "port": 8001}, {"name": "http", "port": 8000}]
    cfg = router_config([route("r", ab_spec())], [deployment("a"), deployment("b")], [s])
    assert [e.url for e in dep(cfg, "a").endpoints] == ["http://[fd00::1]:8000"]


def test_empty_slices_mean_scaled_to_zero() -> None:
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a", endpoint="http://a.team.svc:8000"), deployment("b")],
                        [endpoint_slice("a", [])])
    assert dep(cfg, "a").endpoints == []
    assert dep(cfg, "b").endpoints == []  # no slices, no status endpoint


def test_status_endpoint_not_ready_is_known_but_out_of_rotation() -> None:
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a", endpoint="http://127.0.0.1:9001", ready=0),
                         deployment("b")], [])
    assert [(e.url, e.ready) for e in dep(cfg, "a").endpoints] == [
        ("http://127.0.0.1:9001", False)]


def test_no_sizing_keeps_defaults() -> None:
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a", sizing=False), deployment("b")], [])
    assert dep(cfg, "a").gpus_per_replica == 1
    assert dep(cfg, "a").tokens_per_s_per_replica == DeploymentConfig(
        name="x").tokens_per_s_per_replica


def test_route_with_missing_deployment_is_skipped_not_fatal() -> None:
    good = route("good", {"model": "good", "variants": [{"name": "v", "deployment": "a"}]})
    bad = route("bad", ab_spec(b="missing"))
    cfg = router_config([good, bad], [deployment("a"), deployment("b")], [])
    assert [r.model for r in cfg.routes] == ["good"]
    assert [d.name for d in cfg.deployments] == ["team/a"]  # only referenced ones


def test_deployment_in_other_namespace_does_not_count() -> None:
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a"), deployment("b", ns="elsewhere")], [])
    assert cfg.routes == []


def test_deleting_deployment_is_gone() -> None:
    cfg = router_config([route("r", ab_spec())],
                        [deployment("a"), deployment("b", deleting=True)], [])
    assert cfg.routes == []


def test_invalid_objects_are_skipped() -> None:
    broken_route = route("x", {"model": "x"})  # neither variants nor tiers
    broken_dep = deployment("c")
    broken_dep["spec"]["runtime"] = "nope"
    ok = route("r", ab_spec())
    cfg = router_config([broken_route, ok], [deployment("a"), deployment("b"), broken_dep], [])
    assert [r.model for r in cfg.routes] == ["chat"]


def test_model_claimed_twice_the_older_route_wins() -> None:
    older = route("old", ab_spec(), ns="one", created="2026-01-01T00:00:00Z")
    newer = route("new", ab_spec(), ns="two", created="2026-02-01T00:00:00Z")
    deps = [deployment(n, ns=ns) for n in ("a", "b") for ns in ("one", "two")]
    cfg = router_config([newer, older], deps, [])
    (r,) = cfg.routes
    assert r.variants[0].deployment == "one/a"
    assert route_owners([newer, older]) == {"chat": ("one", "old")}


def test_fallback_deployments_are_included() -> None:
    cfg = router_config([route("r", ab_spec(fallback=["c"]))],
                        [deployment("a"), deployment("b"), deployment("c")], [])
    assert {d.name for d in cfg.deployments} == {"team/a", "team/b", "team/c"}
    assert cfg.routes[0].fallback == ["team/c"]


def test_base_supplies_server_and_static_entries() -> None:
    base = RouterConfig(server=ServerConfig(tier_header="x-tier"),
                        deployments=[DeploymentConfig(name="static")])
    cfg = router_config([route("r", ab_spec())], [deployment("a"), deployment("b")], [],
                        base=base)
    assert cfg.server.tier_header == "x-tier"
    assert [d.name for d in cfg.deployments] == ["static", "team/a", "team/b"]


def test_pure_and_deterministic() -> None:
    args = ([route("r", ab_spec())], [deployment("b"), deployment("a")],
            [endpoint_slice("a", [("10.0.0.2", True), ("10.0.0.1", True)])])
    assert router_config(*args) == router_config(*args)


# --- ClusterSource against a fake API: watch -> hot swap, status.ab written on change ---

class FakeApi(KubeApi):
    """``list_versioned``/``watch``/``patch_status`` of KubeApi, from in-memory objects.
    A KubeApi so mypy holds it to the real signatures; it never connects."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.events: dict[str, asyncio.Queue[dict[str, Any]]] = {
            k: asyncio.Queue() for k in ("LLMRoute", "LLMDeployment", "EndpointSlice",
                                         "Secret")}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.selectors: dict[str, str | None] = {}

    async def list_versioned(self, api_version: str, kind: str, namespace: str | None = None,
                             label_selector: str | None = None,
                             field_selector: str | None = None,
                             ) -> tuple[list[dict[str, Any]], str]:
        self.selectors[kind] = field_selector
        return list(self.objects.get(kind, [])), "1"

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    resource_version: str, label_selector: str | None = None,
                    timeout_s: int = 300, field_selector: str | None = None,
                    ) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.events[kind].get()

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((namespace, name, status))
        obj = next(r for r in self.objects["LLMRoute"] if r["metadata"]["name"] == name)
        return {**obj, "status": status}


async def test_cluster_source_applies_changes_and_writes_ab_only_when_changed() -> None:
    r = route("r", ab_spec(stickySession={"header": "x-user-id"}))
    api = FakeApi({"LLMRoute": [r], "LLMDeployment": [
        deployment("a", endpoint="http://127.0.0.1:9001"),
        deployment("b", endpoint="http://127.0.0.1:9002")]})
    router = Router(RouterConfig())
    source = ClusterSource(api, router, NS, debounce_s=0.01,
                           ab_interval_s=3600, now=lambda: "2026-01-01T00:00:00Z")
    task = asyncio.create_task(source.run())
    try:
        await wait_until_async(lambda: "chat" in router.snapshot.routes, 5, "route applied")
        changed = copy.deepcopy(r)
        changed["spec"]["variants"][0]["weight"], changed["spec"]["variants"][1]["weight"] = 0, 100
        await api.events["LLMRoute"].put({"type": "MODIFIED", "object": changed})
        await wait_until_async(
            lambda: [v.cfg.weight for v in router.snapshot.routes["chat"].variants] == [0, 100],
            5, "new weights applied")
        assert await source.publish_ab() == 0  # no traffic yet: nothing to say
        router.snapshot.routes["chat"].ab.record("vb", ok=True, e2e=0.2, ttft=0.05, tpot=0.01)
        assert await source.publish_ab() == 1
        (_ns, name, status), = api.patches
        assert name == "r" and status["ab"]["variants"][1]["requests"] == 1
        assert status["ab"]["variants"][1]["ttftP50Ms"] == 50.0
        assert await source.publish_ab() == 0  # steady state writes nothing
        await api.events["LLMDeployment"].put(
            {"type": "DELETED", "object": deployment("b")})
        await wait_until_async(lambda: "chat" not in router.snapshot.routes, 5, "route dropped")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_ab_status_maps_the_readout() -> None:
    rec = AbRecorder()
    for i in range(30):
        rec.record("control", ok=True, e2e=0.1, ttft=0.010 + i / 1e5, tpot=0.005)
        rec.record("candidate", ok=i % 10 != 0, e2e=0.3, ttft=0.050 + i / 1e5, tpot=0.02)
    ab = ab_status(rec.readout(["control", "candidate"]), "now")
    control, candidate = ab["variants"]
    assert (control["name"], control["requests"], control["errorRate"]) == ("control", 30, 0.0)
    assert candidate["errorRate"] == pytest.approx(0.1)
    assert candidate["ttftP50Ms"] > control["ttftP50Ms"]
    assert ab["significant"] is True and ab["pValue"] < 0.05
    assert "Mann-Whitney" in ab["test"] and "ttft_seconds" in ab["test"]
    assert ab["updated"] == "now"


def test_ab_status_too_few_samples_has_no_p_value() -> None:
    rec = AbRecorder()
    rec.record("x", ok=True, e2e=0.1, ttft=None, tpot=None)
    ab = ab_status(rec.readout(["x", "y"]), "now")
    assert ab["pValue"] is None and ab["significant"] is None
    assert "not yet" in ab["test"]
    assert [v["requests"] for v in ab["variants"]] == [1, 0]


async def test_expired_watch_relists() -> None:
    api = FakeApi({"LLMRoute": [route("r", ab_spec())],
                   "LLMDeployment": [deployment("a"), deployment("b")]})
    router = Router(RouterConfig())
    source = ClusterSource(api, router, None, debounce_s=0.01,
                           ab_interval_s=3600)
    task = asyncio.create_task(source.run())
    try:
        await wait_until_async(lambda: "chat" in router.snapshot.routes, 5, "route applied")
        api.objects["LLMRoute"] = []  # deleted while the watch was down
        await api.events["LLMRoute"].put({"type": "ERROR", "object": {"code": 410}})
        await wait_until_async(lambda: "chat" not in router.snapshot.routes, 5, "re-listed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_force_tier_header_from_tiered_routes() -> None:
    spec = {"model": "assistant", "tiers": {"fast": "a", "slow": "b", "policy": {
        "forceTierHeader": "X-Tier"}}}
    deps = [deployment("a"), deployment("b")]
    assert router_config([route("t", spec)], deps, []).server.tier_header == "x-tier"
    explicit = RouterConfig(server=ServerConfig(tier_header="x-mine"))
    assert router_config([route("t", spec)], deps, [], base=explicit
                         ).server.tier_header == "x-mine"
    assert router_config([route("r", ab_spec())], deps, []).server.tier_header == (
        ServerConfig().tier_header)


# --- API keys from a Secret (--api-keys-secret) ---

SENTINEL = "sk-sentinel-4b1d9c7e"


def secret(keys: dict[str, str], limits: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "router-keys", "namespace": "sys"}
    if limits is not None:
        meta["annotations"] = {API_KEY_LIMITS_ANNOTATION: limits}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}}


def test_api_keys_from_secret_entries_and_limits_annotation() -> None:
    keys = api_keys(secret({"alice": SENTINEL + "\n", "bob": "sk-b", "empty": ""},
                           '{"alice": {"requestsPerMinute": 60, "tokensPerMinute": 1000}}'))
    assert [(k.name, k.key.get_secret_value(), k.requests_per_minute, k.tokens_per_minute)
            for k in keys] == [("alice", SENTINEL, 60, 1000), ("bob", "sk-b", None, None)]
    assert api_keys(None) == []


@pytest.mark.parametrize("bad", [
    secret({"alice": SENTINEL}, "not json " + SENTINEL),
    secret({"alice": SENTINEL}, '{"alice": {"requestsPerMinute": "' + SENTINEL + '"}}'),
    {"metadata": {}, "data": {"alice": "%%%" + SENTINEL}},
])
def test_bad_secret_errors_never_quote_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        api_keys(bad)
    assert SENTINEL not in str(info.value)


async def _status(url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = {"model": "chat", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    headers=headers) as r:
        await r.read()
        return r.status


def _knows(r: Router, key: str) -> bool:
    try:
        return r.keys.authenticate(f"Bearer {key}") is not None
    except RouterError:
        return False


async def test_cluster_source_hot_swaps_keys_from_the_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = Router(RouterConfig())
    async with stub() as (_s, backend), serve_router(r) as url:
        api = FakeApi({"LLMRoute": [route("r", ab_spec())],
                       "LLMDeployment": [deployment(n, "rayServe", endpoint=backend)
                                         for n in ("a", "b")],
                       "Secret": [secret({"alice": SENTINEL})]})
        source = ClusterSource(api, r, NS, debounce_s=0.01,
                               ab_interval_s=3600, api_keys_secret=("sys", "router-keys"))
        task = asyncio.create_task(source.run())
        try:
            await wait_until_async(lambda: "chat" in r.snapshot.routes, 5, "route applied")
            assert api.selectors["Secret"] == "metadata.name=router-keys"
            assert await _status(url, None) == 401
            assert await _status(url, "wrong") == 401
            assert await _status(url, SENTINEL) == 200
            await api.events["Secret"].put({"type": "MODIFIED", "object": secret(
                {"alice": "sk-rotated"}, '{"alice": {"requestsPerMinute": 1}}')})
            await wait_until_async(lambda: _knows(r, "sk-rotated"), 5, "rotated key applied")
            assert await _status(url, SENTINEL) == 401
            assert await _status(url, "sk-rotated") == 200
            assert await _status(url, "sk-rotated") == 429  # the annotation's limit
            await api.events["Secret"].put({"type": "MODIFIED", "object": secret(
                {"alice": SENTINEL}, "broken " + SENTINEL)})
            await wait_until_async(lambda: "not applied" in caplog.text, 5,
                                   "the bad Secret rejected")
            assert await _status(url, SENTINEL) == 401  # it keeps the keys loaded before
            await api.events["Secret"].put({"type": "DELETED", "object": secret({})})
            await wait_until_async(lambda: not _knows(r, "sk-rotated"), 5, "keys dropped")
            assert await _status(url, "sk-rotated") == 401  # no Secret: fail closed
            async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
                text = await resp.text()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert SENTINEL not in caplog.text and SENTINEL not in text


def _cpu(obj: dict[str, Any], threads: int, planned: bool) -> dict[str, Any]:
    obj["spec"]["engine"] = "llamacpp"
    obj["spec"]["accelerator"] = {"type": "cpu", "threadsPerReplica": threads}
    if planned:
        obj["status"]["sizing"].update(gpusPerReplica=0, threadsPerReplica=threads)
    else:
        del obj["status"]["sizing"]
    return obj


@pytest.mark.parametrize("planned", [True, False])
def test_cpu_replica_pays_for_its_cores(planned: bool) -> None:
    """The catalog prices cpu per core-hour, so a 2-thread replica costs two units."""
    cfg = router_config([route("r", ab_spec())],
                        [_cpu(deployment("a"), 2, planned), deployment("b")], [])
    assert dep(cfg, "a").gpu_type == "cpu"
    assert dep(cfg, "a").gpus_per_replica == 2
    assert dep(cfg, "b").gpus_per_replica == 2  # the GPU plan's count, unchanged

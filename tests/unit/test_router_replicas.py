"""Router replicas: who they are (the router Service's ready endpoints), their count (which
divides the key limits), and the writer reading every replica's A/B statistics over HTTP."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

import pytest

from tierserve.core.kube.client import KubeApi
from tierserve.core.routerconfig import parse_config
from tierserve.dev.testing import serve_router, simple_config, stub
from tierserve.routing import cli as router_cli
from tierserve.routing.abtest import VariantWire, merged
from tierserve.routing.app import Router
from tierserve.routing.replicas import (
    RouterReplicas,
    RouterService,
    ready_replicas,
    replica_count,
    route_parts,
)

SERVICE = RouterService("tierserve-system", "tierserve-router")


def endpoint_slice(name: str, endpoints: list[tuple[str, bool | None]],
                   port: int = 8080) -> dict[str, Any]:
    """A slice of the router Service; ``None`` readiness is what the API calls unknown."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": SERVICE.namespace,
                         "labels": {"kubernetes.io/service-name": SERVICE.name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], **({} if ready is None else
                                                {"conditions": {"ready": ready}})}
                          for a, ready in endpoints],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def test_router_service_parse_names_the_bad_value() -> None:
    assert RouterService.parse("ns/router") == RouterService("ns", "router")
    assert RouterService.parse("ns/router").lease == "router-ab-writer"
    for bad in ("router", "ns/", "/router", "ns/a/b"):
        with pytest.raises(ValueError, match=repr(bad)):
            RouterService.parse(bad)


def test_ready_replicas_are_the_ready_endpoints_of_every_slice() -> None:
    slices = [endpoint_slice("a", [("10.0.0.1", True), ("10.0.0.2", False)]),
              endpoint_slice("b", [("10.0.0.3", None), ("10.0.0.1", True)])]
    assert ready_replicas(slices, SERVICE) == ["http://10.0.0.1:8080", "http://10.0.0.3:8080"]
    assert replica_count(slices, SERVICE) == 2
    assert replica_count([], SERVICE) == 1  # no Service (yet): this replica alone
    assert replica_count([endpoint_slice("a", [("10.0.0.1", False)])], SERVICE) == 1


def test_route_parts_leave_out_replicas_not_serving_the_route() -> None:
    wire = VariantWire.model_validate({"requests": 2, "errors": 0, **{
        m: {"seen": 0, "values": []} for m in ("ttft", "tpot", "e2e")}})
    stats = [{"chat": {"a": wire}}, {"other": {"a": wire}}, {"chat": {"a": wire}}]
    assert [p["a"].requests for p in route_parts(stats, "chat")] == [2, 2]


@asynccontextmanager
async def two_routers() -> AsyncIterator[tuple[list[Router], list[str]]]:
    """Two router replicas of one route, on free ports at 127.0.0.1."""
    async with AsyncExitStack() as stack:
        _stub, upstream = await stack.enter_async_context(stub())
        cfg = parse_config(simple_config({"d": [upstream]}, {"chat": {"d": 1.0}}))
        routers = [Router(cfg), Router(cfg)]
        urls = [await stack.enter_async_context(serve_router(r)) for r in routers]
        yield routers, urls


def replicas_at(urls: list[str]) -> RouterReplicas:
    """Replicas whose slice lists 10.0.0.1, 10.0.0.2, ... reached at ``urls``."""
    addresses = [f"10.0.0.{i + 1}" for i in range(len(urls))]
    where = {f"http://{a}:8080": u for a, u in zip(addresses, urls, strict=True)}
    # statistics() reads the slice cache and the replicas, never the API; ``resolve``
    # stands in for the cluster network (pod address -> this machine's port)
    replicas = RouterReplicas(cast(KubeApi, object()), SERVICE, resolve=where.__getitem__)
    slice_ = endpoint_slice("s", [(a, True) for a in addresses])
    replicas.slices.objects.observe((SERVICE.namespace, "s"), slice_)
    return replicas


async def test_the_writer_reads_every_replicas_statistics() -> None:
    async with two_routers() as (routers, urls):
        for n, r in zip((3, 5), routers, strict=True):
            for _ in range(n):
                r.snapshot.routes["chat"].ab.record("d", ok=True, e2e=0.2, ttft=0.05,
                                                    tpot=0.01)
        replicas = replicas_at(urls)
        try:
            stats = await replicas.statistics()
            assert stats is not None and len(stats) == 2
            out = merged(route_parts(stats, "chat")).readout(["d"])
            assert out["variants"][0]["requests"] == 8
        finally:
            await replicas.close()


async def test_the_writer_writes_nothing_when_a_replica_does_not_answer() -> None:
    async with two_routers() as (_routers, urls):
        replicas = replicas_at([urls[0], "http://127.0.0.1:9"])  # nothing listens on 9
        try:
            assert await replicas.statistics() is None
        finally:
            await replicas.close()
    assert await replicas_at([]).statistics() is None  # no ready replica at all


@pytest.mark.parametrize(("argv", "says"), [
    (["--kubernetes", "--router-service", "tierserve-router"], "got 'tierserve-router'"),
    (["--config", "router.yaml", "--router-service", "ns/router"], "need --kubernetes"),
])
def test_cli_refuses_a_bad_router_service(argv: list[str], says: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    router_cli.register(parser.add_subparsers())
    assert router_cli.run(parser.parse_args(["router", *argv])) == 2
    assert says in capsys.readouterr().err

"""The autoscaler without Prometheus (the chart's default): scrape URLs per runtime from
EndpointSlices or ``status.endpoint``, discovery following the slices, the slice watch,
and the CLI accepting no metrics flag when it discovers targets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.test_autoscaler_discovery import FakeSink, _obj
from tierserve.autoscaler import watch as autoscale_watch
from tierserve.autoscaler.cli import _check_source, load_targets
from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.discovery import Discovery, DiscoveryOptions, target_from_object
from tierserve.cli.main import build_parser
from tierserve.core.kube.client import KubeApi


def _slice(name: str, service: str, *endpoints: tuple[str, bool | None],
           ns: str = "team") -> dict[str, Any]:
    eps = [{"addresses": [a], **({} if ready is None else {"conditions": {"ready": ready}})}
           for a, ready in endpoints]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8000}],
            "endpoints": eps}


def _triton(name: str = "chat") -> dict[str, Any]:
    obj = _obj(name, runtime="triton")
    obj["status"]["endpoint"] = f"http://{name}.team.svc:8000"
    return obj


def _endpoints(obj: dict[str, Any], *slices: dict[str, Any]) -> tuple[str, ...]:
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in slices:
        key = (s["metadata"]["namespace"], s["metadata"]["labels"]["kubernetes.io/service-name"])
        by_service.setdefault(key, []).append(s)
    t = target_from_object(obj, DiscoveryOptions(), by_service)
    assert isinstance(t, ScaleTarget)
    return t.endpoints


def test_triton_is_scraped_at_every_ready_pod_on_its_metrics_port() -> None:
    """Each Triton pod serves its own replica's metrics on 8002 (not the Service's http
    port that ``status.endpoint`` names): one URL per ready address of its slices."""
    slices = [_slice("chat-a", "chat", ("10.0.0.2", True), ("10.0.0.3", None)),
              _slice("chat-b", "chat", ("10.0.0.4", False), ("fd00::5", True)),
              _slice("other-a", "other", ("10.0.0.9", True))]
    assert _endpoints(_triton(), *slices) == (
        "http://10.0.0.2:8002/metrics", "http://10.0.0.3:8002/metrics",
        "http://[fd00::5]:8002/metrics")


def test_triton_without_slices_has_nothing_to_scrape() -> None:
    assert _endpoints(_triton()) == ()
    other_ns = _slice("chat-a", "chat", ("10.0.0.2", True), ns="elsewhere")
    assert _endpoints(_triton(), other_ns) == ()


def test_ray_serve_is_one_target_through_its_service() -> None:
    """Ray Serve's ingress aggregates every replica: scraping each pod would count the
    deployment several times, so slices do not matter."""
    obj = _obj()
    obj["status"]["endpoint"] = "http://chat-serve-svc.team.svc:8000/v1"
    many = _slice("s", "chat-serve-svc", ("10.0.0.2", True), ("10.0.0.3", True))
    assert _endpoints(obj, many) == ("http://chat-serve-svc.team.svc:8000/metrics",)


def test_real_vllm_on_ray_serve_exports_nothing_to_scrape() -> None:
    assert _endpoints(_obj(engine="vllm")) == ()


def _eps(sink: FakeSink, name: str) -> tuple[str, ...]:
    return sink.targets[("team", name)].endpoints


def test_discovery_follows_the_slices() -> None:
    sink = FakeSink()
    d = Discovery(sink, DiscoveryOptions())
    d.replace_all([_triton("chat"), _triton("other")])
    assert _eps(sink, "chat") == ()
    d.set_slice("team", "chat-a", _slice("chat-a", "chat", ("10.0.0.2", True)))
    assert _eps(sink, "chat") == ("http://10.0.0.2:8002/metrics",)
    assert _eps(sink, "other") == ()
    adds = sink.adds
    d.set_slice("team", "chat-a", _slice("chat-a", "chat", ("10.0.0.2", True)))
    assert sink.adds == adds  # unchanged: the controller keeps the target as it is
    d.set_slice("team", "chat-a", _slice("chat-a", "chat", ("10.0.0.2", False),
                                         ("10.0.0.3", True)))
    assert _eps(sink, "chat") == ("http://10.0.0.3:8002/metrics",)
    d.set_slice("team", "chat-a", None)
    assert _eps(sink, "chat") == ()
    d.delete("team", "chat")
    d.set_slice("team", "chat-b", _slice("chat-b", "chat", ("10.0.0.2", True)))
    assert ("team", "chat") not in sink.targets  # a deleted deployment stays deleted


class KindApi(KubeApi):
    """One list per kind, no watch events; never connects (no base initialiser)."""

    def __init__(self, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.lists = lists
        self.selectors: dict[str, str | None] = {}

    async def list_versioned(self, api_version: str, kind: str, namespace: str | None = None,
                             label_selector: str | None = None,
                             field_selector: str | None = None,
                             ) -> tuple[list[dict[str, Any]], str]:
        self.selectors[kind] = label_selector
        return self.lists[kind], "1"

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    resource_version: str, label_selector: str | None = None,
                    timeout_s: int = 300, field_selector: str | None = None,
                    ) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}


@pytest.mark.parametrize("slices", [True, False])
def test_initial_list_reads_slices_only_for_a_direct_scrape(slices: bool) -> None:
    api = KindApi({"EndpointSlice": [_slice("chat-a", "chat", ("10.0.0.2", True))],
                   "LLMDeployment": [_triton()]})
    sink = FakeSink()
    asyncio.run(autoscale_watch.initial_targets(api, None, Discovery(sink, DiscoveryOptions()),
                                                slices=slices))
    assert set(api.selectors) == ({"EndpointSlice", "LLMDeployment"} if slices
                                  else {"LLMDeployment"})
    if slices:  # only the slices of Services (the EndpointSlice controller's label)
        assert api.selectors["EndpointSlice"] == "kubernetes.io/service-name"
    assert _eps(sink, "chat") == (
        ("http://10.0.0.2:8002/metrics",) if slices else ())


def _args(*argv: str) -> Any:
    return build_parser(["autoscaler", *argv]).parse_args(["autoscaler", *argv])


def test_cli_discovers_and_scrapes_without_a_prometheus_url() -> None:
    """The chart's default command line parses (a metrics flag was required before)."""
    args = _args("--in-cluster")
    assert args.prometheus_url is None and args.scrape is None
    _check_source(args, [])


def test_cli_flags_mode_needs_something_to_scrape() -> None:
    args = _args("--name", "chat")
    with pytest.raises(ValueError, match="no metrics source for default/chat"):
        _check_source(args, load_targets(args))
    scraped = _args("--name", "chat", "--scrape", "http://127.0.0.1:1/metrics")
    _check_source(scraped, load_targets(scraped))
    _check_source(_args("--prometheus-url", "http://p:9090"), load_targets(scraped))

"""LLMDeployment -> ScaleTarget mapping, the discovery set, the watch driver (fake API)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.test_autoscaler_controller import FakeSource, FakeWriter
from tests.unit.test_autoscaler_support import sample
from tierserve.autoscaler import watch as autoscale_watch
from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.discovery import (
    Discovery,
    DiscoveryOptions,
    Skipped,
    metrics_url,
    target_from_object,
)
from tierserve.autoscaler.policy import parse_knobs
from tierserve.core.api.deployment import SizingPlan
from tierserve.core.capacity import capacity_from_plan
from tierserve.core.kube.client import KubeApi

SIZING = {"gpusPerReplica": 1, "weightsGib": 7.5, "kvCacheGib": 10.0,
          "kvBytesPerToken": 524288, "maxBatchPerReplica": 10, "estTpotMs": 34.0,
          "estTtftMs": 38.0, "tokensPerSecondPerReplica": 300.0,
          "requestsPerSecondPerReplica": 4.0, "costPerMillionTokensUsd": 0.7}


def _obj(name: str = "chat", ns: str = "team", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "m", "uri": "hf://o/m", "parametersBillions": 4},
        "runtime": "rayServe", "engine": "simulated",
        "accelerator": {"type": "L4", "gpusPerReplica": 1},
        "replicas": 1, "minReplicas": 1, "maxReplicas": 3,
        "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 35, "targetAttainment": 0.95},
        "workload": {"inputTokens": 16, "outputTokens": 64},
        "autoscaling": {"scaleUpStabilizationSeconds": 5, "scaleDownStabilizationSeconds": 40,
                        "coldStartSeconds": 10},
    }
    base.update(spec)
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": base,
            "status": {"sizing": dict(SIZING), "endpoint": "http://127.0.0.1:8000/v1"}}


def test_target_from_object_maps_spec_and_status() -> None:
    t = target_from_object(_obj(), DiscoveryOptions(stale_after_s=12, knobs={"a": 1}))
    assert isinstance(t, ScaleTarget)
    assert t.key == ("team", "chat")
    assert (t.slo.ttft_p95_ms, t.slo.tpot_p95_ms, t.slo.target_attainment) == (2000, 35, 0.95)
    lim = t.limits
    assert (lim.min_replicas, lim.max_replicas, lim.cold_start_s) == (1, 3, 10)
    assert (lim.scale_up_stabilization_s, lim.scale_down_stabilization_s) == (5, 40)
    assert lim.stale_after_s == 12 and lim.scale_to_zero_after_s is None
    assert t.endpoints == ("http://127.0.0.1:8000/metrics",)
    assert t.knobs == {"a": 1}
    assert t.capacity == capacity_from_plan(SizingPlan.model_validate(SIZING), 16)


def test_defaults_and_scale_to_zero() -> None:
    obj = _obj(minReplicas=0, autoscaling={"scaleToZeroAfterSeconds": 120})
    t = target_from_object(obj, DiscoveryOptions(default_cold_start_s=45))
    assert isinstance(t, ScaleTarget)
    assert t.limits.min_replicas == 0 and t.limits.scale_to_zero_after_s == 120
    assert t.limits.cold_start_s == 45 and t.limits.scale_down_stabilization_s == 300


def test_metrics_url() -> None:
    assert metrics_url("http://h:1/v1") == "http://h:1/metrics"
    assert metrics_url("http://h:1/v1/") == "http://h:1/metrics"
    assert metrics_url("http://h:1") == "http://h:1/metrics"


def test_disabled_autoscaling_is_observed_not_scaled() -> None:
    obj = _obj()
    obj["spec"]["autoscaling"] = {"enabled": False}
    t = target_from_object(obj, DiscoveryOptions())
    assert isinstance(t, ScaleTarget) and t.observe_only
    enabled = target_from_object(_obj(), DiscoveryOptions())
    assert isinstance(enabled, ScaleTarget) and not enabled.observe_only


@pytest.mark.parametrize("change, reason", [
    (lambda o: o["status"].pop("sizing"), "no sizing plan"),
    (lambda o: o["spec"]["slo"].pop("tpotP95Ms"), "invalid"),
])
def test_skipped(change: Any, reason: str) -> None:
    obj = _obj()
    change(obj)
    out = target_from_object(obj, DiscoveryOptions())
    assert isinstance(out, Skipped) and reason in out.reason


def test_no_endpoint_yet_still_a_target_for_prometheus() -> None:
    obj = _obj()
    obj["status"].pop("endpoint")
    t = target_from_object(obj, DiscoveryOptions())
    assert isinstance(t, ScaleTarget) and t.endpoints == ()


class FakeSink:
    def __init__(self) -> None:
        self.targets: dict[tuple[str, str], ScaleTarget] = {}
        self.adds = 0

    def add(self, target: ScaleTarget) -> None:
        self.adds += 1
        self.targets[target.key] = target

    def remove(self, ns: str, name: str) -> None:
        del self.targets[(ns, name)]


def test_discovery_adds_updates_drops() -> None:
    sink = FakeSink()
    d = Discovery(sink, DiscoveryOptions())
    d.replace_all([_obj("a"), _obj("b")])
    assert set(sink.targets) == {("team", "a"), ("team", "b")} and sink.adds == 2
    d.upsert(_obj("a"))  # our own status write coming back: nothing to do
    assert sink.adds == 2
    changed = _obj("a", maxReplicas=5)
    d.upsert(changed)
    assert sink.targets[("team", "a")].limits.max_replicas == 5 and sink.adds == 3
    disabled = _obj("a", autoscaling={"enabled": False})
    d.upsert(disabled)  # still observed (status.slo), no longer scaled
    assert sink.targets[("team", "a")].observe_only and sink.adds == 4
    unsized = _obj("a")
    unsized["status"].pop("sizing")
    d.upsert(unsized)  # no sizing plan: nothing to size against, dropped
    assert ("team", "a") not in sink.targets and d.skipped[("team", "a")]
    d.delete("team", "b")
    assert sink.targets == {}
    d.upsert(_obj("c"))
    d.replace_all([_obj("d")])  # c vanished while not watching
    assert set(sink.targets) == {("team", "d")}


class FakeApi(KubeApi):
    """list_versioned + one scripted watch per call; when the script is done it sets
    ``stop`` (ending ``watch_deployments``) and blocks like a quiet watch. A KubeApi so
    mypy holds it to the real signatures; it never connects (no base initialiser)."""

    def __init__(self, lists: list[list[dict[str, Any]]],
                 watches: list[list[dict[str, Any]]], stop: asyncio.Event) -> None:
        self.lists, self.watches, self.stop = lists, watches, stop
        self.namespaces: list[str | None] = []
        self.resumed_from: list[str] = []

    async def list_versioned(self, api_version: str, kind: str, namespace: str | None = None,
                             label_selector: str | None = None,
                             field_selector: str | None = None,
                             ) -> tuple[list[dict[str, Any]], str]:
        self.namespaces.append(namespace)
        return self.lists.pop(0), f"list-{len(self.namespaces)}"

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    resource_version: str, label_selector: str | None = None,
                    timeout_s: int = 300, field_selector: str | None = None,
                    ) -> AsyncIterator[dict[str, Any]]:
        self.resumed_from.append(resource_version)
        if not self.watches:
            self.stop.set()
            await asyncio.Event().wait()
        for event in self.watches.pop(0):
            yield event


def test_watch_feeds_discovery_and_relists_on_gone() -> None:
    sink = FakeSink()
    d = Discovery(sink, DiscoveryOptions())
    stop = asyncio.Event()
    b = _obj("b")
    b_more = copy.deepcopy(b)
    b_more["spec"]["maxReplicas"] = 4
    events = [{"type": "ADDED", "object": b}, {"type": "MODIFIED", "object": b_more},
              {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "bm-5"}}},
              {"type": "DELETED", "object": _obj("a")},
              {"type": "ERROR", "object": {"code": 410, "reason": "Expired",
                                           "message": "too old resource version"}},
              {"type": "ADDED", "object": _obj("never-seen")}]
    after_relist = [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "bm-9"}}}]
    api = FakeApi([[_obj("a"), _obj("c")], [_obj("b", maxReplicas=4)]],
                  [events, after_relist], stop)

    async def run() -> None:
        await asyncio.wait_for(autoscale_watch.watch_deployments(
            api, "team", d, stop), 5)

    asyncio.run(run())
    assert api.namespaces == ["team", "team"]  # listed, then re-listed after 410 only
    # the watch resumes from the opaque versions it was given (list, then bookmark)
    assert api.resumed_from == ["list-1", "list-2", "bm-9"]
    # a deleted by the watch, c gone while the watch was down (the re-list's diff)
    assert set(sink.targets) == {("team", "b")}
    assert sink.targets[("team", "b")].limits.max_replicas == 4
    assert sink.adds == 4  # a, c, b, b changed (b unchanged on re-list: no add)


def test_parse_knobs() -> None:
    assert parse_knobs(["down_min_step=1", "safety_z=0.5"]) == {"down_min_step": 1,
                                                                "safety_z": 0.5}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_knobs(["oops"])


def test_controller_ignores_an_identical_target_and_keeps_state_on_change() -> None:
    from prometheus_client import CollectorRegistry

    from tierserve.autoscaler.controller import Controller

    t = target_from_object(_obj(), DiscoveryOptions())
    assert isinstance(t, ScaleTarget)
    ctl = Controller([t], source=FakeSource(load=0.0), writer=FakeWriter(1),
                     clock=lambda: 0.0, registry=CollectorRegistry())
    tracked = ctl.tracked[t.key]
    ctl.add(t.model_copy())
    assert ctl.tracked[t.key] is tracked  # same object: window and policy untouched
    tracked.window.append(sample(0.0, load=1.0))
    changed = target_from_object(_obj(maxReplicas=5), DiscoveryOptions())
    assert isinstance(changed, ScaleTarget)
    ctl.add(changed)
    assert ctl.tracked[t.key] is not tracked and len(ctl.tracked[t.key].window) == 1
    ctl.remove(*t.key)
    assert ctl.tracked == {}

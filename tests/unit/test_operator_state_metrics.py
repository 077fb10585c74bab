"""The deployment-state collector: every ``tierserve_deployment_*`` and ``tierserve_route_*``
family from a store's specs and statuses, and the catalog's prices."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tierserve.core.catalog import CATALOG
from tierserve.operator.state_metrics import StateCollector
from tierserve.operator.store import Store


def _deployment(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None,
                generation: int = 1) -> dict[str, Any]:
    base = {"model": {"name": f"{name}-model", "uri": "hf://org/m", "parametersBillions": 8},
            "runtime": "triton", "engine": "vllm", "accelerator": {"type": "L4"},
            "slo": {"ttftP95Ms": 1500, "tpotP95Ms": 60}}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}",
                         "generation": generation},
            "spec": {**base, **spec}, "status": status or {}}


def _ready(ok: bool) -> dict[str, Any]:
    return {"type": "Ready", "status": "True" if ok else "False"}


def _registry(store: Store, leading: list[bool] | None = None) -> CollectorRegistry:
    reg = CollectorRegistry()
    flag = leading if leading is not None else [True]
    reg.register(StateCollector(store, lambda: flag[0]))
    return reg


def _v(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


@pytest.fixture
def store() -> Store:
    s = Store()
    s.put_deployment(_deployment("chat", {"replicas": 3, "slo": {
        "ttftP95Ms": 1500, "tpotP95Ms": 60, "targetAttainment": 0.995}}, {
        "readyReplicas": 2, "sizing": {"gpusPerReplica": 2},
        "conditions": [_ready(True)]}), deleted=False)
    s.put_deployment(_deployment("small", {
        "runtime": "rayServe", "engine": "llamacpp", "accelerator": {"type": "cpu"}}, {
        "readyReplicas": 1, "sizing": {"gpusPerReplica": 0, "threadsPerReplica": 2},
        "conditions": [_ready(False)]}), deleted=False)
    return s


def test_spec_and_status_of_each_deployment(store: Store) -> None:
    reg = _registry(store)
    chat = {"namespace": "ns", "deployment": "chat"}
    assert _v(reg, "tierserve_deployment_info", **chat, model="chat-model", runtime="triton",
              engine="vllm", accelerator="L4") == 1
    assert _v(reg, "tierserve_deployment_slo_ttft_seconds", **chat) == 1.5
    assert _v(reg, "tierserve_deployment_slo_tpot_seconds", **chat) == 0.06
    assert _v(reg, "tierserve_deployment_slo_objective_ratio", **chat) == 0.995
    assert _v(reg, "tierserve_deployment_replicas_desired", **chat) == 3
    assert _v(reg, "tierserve_deployment_replicas_min", **chat) == 1  # the spec's defaults
    assert _v(reg, "tierserve_deployment_replicas_max", **chat) == 4
    assert _v(reg, "tierserve_deployment_replicas_ready", **chat) == 2
    assert _v(reg, "tierserve_deployment_ready", **chat) == 1
    small = {"namespace": "ns", "deployment": "small"}
    assert _v(reg, "tierserve_deployment_ready", **small) == 0
    assert _v(reg, "tierserve_deployment_slo_objective_ratio", **small) == 0.99  # the default
    assert _v(reg, "tierserve_deployment_replicas_desired", **small) == 1


def test_accelerators_in_use_and_their_cost(store: Store) -> None:
    reg = _registry(store)
    chat = {"namespace": "ns", "deployment": "chat"}
    # 2 ready replicas x 2 GPUs; the catalog's L4 price per GPU-hour
    assert _v(reg, "tierserve_deployment_accelerators", **chat, accelerator="L4") == 4
    assert _v(reg, "tierserve_deployment_cost_per_hour_usd", **chat) == pytest.approx(
        4 * CATALOG["L4"].cost_per_hour_usd)
    small = {"namespace": "ns", "deployment": "small"}  # cpu: cores are the units
    assert _v(reg, "tierserve_deployment_accelerators", **small, accelerator="cpu") == 2
    assert _v(reg, "tierserve_deployment_cost_per_hour_usd", **small) == pytest.approx(
        2 * CATALOG["cpu"].cost_per_hour_usd)


def test_units_from_the_spec_until_sized_and_none_while_auto() -> None:
    s = Store()
    s.put_deployment(_deployment("fixed", {"accelerator": {"type": "H200", "gpusPerReplica": 4}},
                                 {"readyReplicas": 1}), deleted=False)
    s.put_deployment(_deployment("auto", {}, {"readyReplicas": 1}), deleted=False)
    reg = _registry(s)
    assert _v(reg, "tierserve_deployment_accelerators", namespace="ns", deployment="fixed",
              accelerator="H200") == 4
    assert _v(reg, "tierserve_deployment_accelerators", namespace="ns", deployment="auto",
              accelerator="L4") is None  # unknown, not a made-up count
    assert _v(reg, "tierserve_deployment_cost_per_hour_usd", namespace="ns",
              deployment="auto") is None


def test_an_invalid_spec_yields_only_not_ready() -> None:
    s = Store()
    s.put_deployment(_deployment("bad", {"slo": {"ttftP95Ms": 0, "tpotP95Ms": 60}}),
                     deleted=False)
    reg = _registry(s)
    assert _v(reg, "tierserve_deployment_ready", namespace="ns", deployment="bad") == 0
    assert _v(reg, "tierserve_deployment_slo_ttft_seconds", namespace="ns",
              deployment="bad") is None


def test_a_new_generation_is_read_again(store: Store) -> None:
    reg = _registry(store)
    assert _v(reg, "tierserve_deployment_replicas_desired", namespace="ns",
              deployment="chat") == 3
    store.put_deployment(_deployment("chat", {"replicas": 4}, generation=2), deleted=False)
    assert _v(reg, "tierserve_deployment_replicas_desired", namespace="ns",
              deployment="chat") == 4
    store.put_deployment(_deployment("chat", {}, generation=2), deleted=True)
    assert _v(reg, "tierserve_deployment_info", namespace="ns", deployment="chat",
              model="chat-model", runtime="triton", engine="vllm", accelerator="L4") is None


def test_routes_by_model_name_and_mode() -> None:
    s = Store()
    routes = [("ab", {"model": "chat", "variants": [{"name": "a", "deployment": "x"}]}, True),
              ("tiered", {"model": "smart", "tiers": {"fast": "x", "slow": "y"}}, False)]
    for name, spec, ok in routes:
        s.put_route({"metadata": {"name": name, "namespace": "ns"}, "spec": spec,
                     "status": {"conditions": [_ready(ok)]}}, deleted=False)
    reg = _registry(s)
    assert _v(reg, "tierserve_route_info", namespace="ns", route="chat", mode="ab") == 1
    assert _v(reg, "tierserve_route_info", namespace="ns", route="smart", mode="tiered") == 1
    assert _v(reg, "tierserve_route_ready", namespace="ns", route="chat") == 1
    assert _v(reg, "tierserve_route_ready", namespace="ns", route="smart") == 0


def test_a_follower_exports_no_state(store: Store) -> None:
    leading = [False]
    reg = _registry(store, leading)
    assert _v(reg, "tierserve_deployment_ready", namespace="ns", deployment="chat") is None
    leading[0] = True
    assert _v(reg, "tierserve_deployment_ready", namespace="ns", deployment="chat") == 1

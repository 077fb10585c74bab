"""The operator against the real control plane: examples, scale, scheduling, GC, drift."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from e2e.examples import custom_resource_files
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster
# every example of Tierserve objects, so each is applied to the real API server (a unit
# test, tests/unit/test_examples_applied.py, checks that nothing in examples/ is left out)
EXAMPLES = custom_resource_files()


def get(cluster: ClusterHandle, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def ready(cluster: ClusterHandle, name: str, ns: str = "default") -> dict[str, Any]:
    return condition(get(cluster, "llmd", name, "-n", ns), "Ready")


@pytest.fixture
def examples(cluster: ClusterHandle, operator_factory: Callable[..., Any]) -> Iterator[None]:
    op = operator_factory("examples").start()
    for f in EXAMPLES:
        cluster.kubectl("apply", "-f", str(f))
    try:
        yield
    finally:
        for f in reversed(EXAMPLES):
            cluster.kubectl.run("delete", "-f", str(f), "--wait=false", check=False)
        op.stop()


def children(cluster: ClusterHandle, name: str, ns: str = "default") -> list[dict[str, Any]]:
    sel = f"tierserve.io/deployment={name}"
    kinds = "deployments.apps,services,configmaps,rayservices.ray.io"
    items: list[dict[str, Any]] = get(cluster, kinds, "-n", ns, "-l", sel)["items"]
    return items


def has_children(cluster: ClusterHandle, name: str) -> bool:
    return bool(children(cluster, name))


def test_examples_become_children_ready_and_listed(cluster: ClusterHandle,
                                                   examples: None) -> None:
    deployments = [d["metadata"]["name"] for f in EXAMPLES for d in
                   yaml.safe_load_all(f.read_text()) if d["kind"] == "LLMDeployment"]
    for name in deployments:
        wait_until(functools.partial(has_children, cluster, name), 60, f"children of {name}")
        for child in children(cluster, name):
            ref = child["metadata"]["ownerReferences"][0]
            assert ref["kind"] == "LLMDeployment" and ref["name"] == name and ref["controller"]
    # Triton pods land only on L4 nodes and run (kwok plays the kubelet)
    wait_until(lambda: ready(cluster, "llama-8b-triton").get("status") == "True", 120,
             "llama-8b-triton Ready=True")
    pods = get(cluster, "pods", "-l", "tierserve.io/deployment=llama-8b-triton")["items"]
    assert pods and all(p["status"]["phase"] == "Running" for p in pods)
    for pod in pods:
        node = get(cluster, "node", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    status = get(cluster, "llmd", "llama-8b-triton")["status"]
    assert status["sizing"]["gpusPerReplica"] == 2
    assert status["replicasSummary"] == "1/1"
    # Ray Serve deployment: RayService created; without a KubeRay controller it waits
    rs = get(cluster, "rayservice", "llama-8b-ray")
    assert "applications" in rs["spec"]["serveConfigV2"]
    wait_until(lambda: ready(cluster, "llama-8b-ray").get("reason") == "RuntimeNotReady", 60,
             "llama-8b-ray to report it waits for the runtime")
    table = cluster.kubectl("get", "llm")
    for column in ("MODEL", "ACCELERATOR", "REPLICAS", "SLO", "READY", "AGE"):
        assert column in table
    assert "RUNTIME" not in table  # secondary: only with -o wide
    assert "RUNTIME" in cluster.kubectl("get", "llmd", "-o", "wide")
    assert "llmdeployment.tierserve.io/llama-8b-triton" in table
    assert "llmroute.tierserve.io/chat-ab" in table


def test_scale_subresource_changes_children(cluster: ClusterHandle, examples: None) -> None:
    wait_until(lambda: ready(cluster, "llama-8b-triton").get("status") == "True", 120, "ready")
    cluster.kubectl("scale", "llmdeployment/llama-8b-triton", "--replicas=2")
    wait_until(lambda: get(cluster, "deployment", "llama-8b-triton")["spec"]["replicas"] == 2,
             60, "Triton Deployment scaled to 2")
    wait_until(lambda: get(cluster, "llmd", "llama-8b-triton")["status"].get(
        "readyReplicas") == 2, 120, "2 ready replicas in status")
    cluster.kubectl("scale", "llmd/llama-8b-ray", "--replicas=3")

    def ray_workers() -> int:
        spec = get(cluster, "rayservice", "llama-8b-ray")["spec"]
        return int(spec["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"])

    wait_until(lambda: ray_workers() == 3, 60, "RayService worker group scaled to 3")
    app = yaml.safe_load(get(cluster, "rayservice", "llama-8b-ray")["spec"]["serveConfigV2"])
    assert app["applications"][0]["args"]["llm_configs"][0]["deployment_config"][
        "num_replicas"] == 3


def _deployment(name: str, gpu: str, ns: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": name, "uri": "hf://org/m", "parametersBillions": 3},
                     "runtime": "triton", "engine": "simulated",
                     "accelerator": {"type": gpu, "gpusPerReplica": 1},
                     "replicas": replicas, "minReplicas": 0,
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80}}}


def test_unknown_gpu_type_in_cluster_reports_unschedulable(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    operator_factory("unsched", "-n", namespace).start()
    cluster.apply(_deployment("on-t4", "A10G", namespace))
    wait_until(lambda: ready(cluster, "on-t4", namespace).get("reason") == "Unschedulable", 90,
             "Unschedulable condition")
    cond = ready(cluster, "on-t4", namespace)
    assert cond["status"] == "False"
    assert "cannot be scheduled" in cond["message"] and "node" in cond["message"]
    events = get(cluster, "events", "-n", namespace,
                 "--field-selector", "involvedObject.name=on-t4")["items"]
    assert any(e["reason"] == "Unschedulable" and e["type"] == "Warning" for e in events)


def test_delete_garbage_collects_children(cluster: ClusterHandle, namespace: str,
                                          operator_factory: Callable[..., Any]) -> None:
    operator_factory("gc", "-n", namespace).start()
    cluster.apply(_deployment("gc-me", "L4", namespace))
    wait_until(lambda: len(children(cluster, "gc-me", namespace)) == 3, 60, "3 children")
    cluster.kubectl("delete", "llmd", "gc-me", "-n", namespace)
    wait_until(lambda: not children(cluster, "gc-me", namespace), 90, "children collected")
    wait_until(lambda: not get(cluster, "pods", "-n", namespace)["items"], 90, "pods gone")


def test_child_deleted_or_edited_by_hand_is_restored(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    operator_factory("drift", "-n", namespace).start()
    cluster.apply(_deployment("drift", "L4", namespace))
    wait_until(lambda: len(children(cluster, "drift", namespace)) == 3, 60, "3 children")
    uid = get(cluster, "service", "drift", "-n", namespace)["metadata"]["uid"]
    cluster.kubectl("delete", "service", "drift", "-n", namespace)
    wait_until(lambda: cluster.exists("service", "drift", "-n", namespace) and get(
        cluster, "service", "drift", "-n", namespace)["metadata"]["uid"] != uid, 60,
        "Service re-created")
    cluster.kubectl("scale", "deployment/drift", "-n", namespace, "--replicas=5")
    wait_until(lambda: get(cluster, "deployment", "drift", "-n", namespace)["spec"][
        "replicas"] == 1, 60, "hand-edited replicas restored to 1")
    cluster.kubectl("patch", "configmap", "drift-model-repo", "-n", namespace, "--type=merge",
                    "-p", '{"data": {"config.pbtxt": "tampered"}}')
    wait_until(lambda: "decoupled" in get(cluster, "configmap", "drift-model-repo", "-n",
                                        namespace)["data"]["config.pbtxt"], 60,
             "model config restored")


def test_events_only_on_transitions_and_no_writes_when_steady(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    op = operator_factory("steady", "-n", namespace).start()
    cluster.apply(_deployment("steady", "L4", namespace))
    wait_until(lambda: ready(cluster, "steady", namespace).get("status") == "True", 120, "ready")
    wait_until(lambda: op.metrics().get("tierserve_operator_workqueue_depth") == 0, 30, "idle")
    before = op.metrics()
    reconciles = before["tierserve_operator_reconciles_total"]
    # resync runs every 3 s: wait for at least two full passes over the object
    wait_until(lambda: op.metrics()["tierserve_operator_reconciles_total"] >= reconciles + 2,
             30, "two resync passes")
    after = op.metrics()
    assert (after["tierserve_operator_api_writes_total"]
            == before["tierserve_operator_api_writes_total"])
    assert after["tierserve_operator_leader"] == 1
    events = get(cluster, "events", "-n", namespace,
                 "--field-selector", "involvedObject.name=steady")["items"]
    ready_events = [e for e in events if e["reason"] == "ReplicasReady"]
    assert len(ready_events) == 1


def test_route_to_missing_deployment_is_not_ready_with_reason(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    operator_factory("routes", "-n", namespace).start()
    cluster.apply({"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
                   "metadata": {"name": "chat", "namespace": namespace},
                   "spec": {"model": "chat", "tiers": {"fast": "small", "slow": "nowhere"}}})

    def route_ready() -> dict[str, Any]:
        return condition(get(cluster, "llmr", "chat", "-n", namespace), "Ready")

    wait_until(lambda: route_ready().get("reason") == "DeploymentNotFound", 60, "route condition")
    assert '"small", "nowhere"' in route_ready()["message"]
    cluster.apply([_deployment("small", "L4", namespace), _deployment("nowhere", "L4",
                                                                         namespace)])
    wait_until(lambda: route_ready().get("status") == "True", 120, "route Ready once both are")

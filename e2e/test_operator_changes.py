"""Spec changes on live objects, against the real control plane and the operator running
under the chart's ServiceAccount: a runtime switch prunes the old runtime's children
(and nothing the operator does not own), a runtime whose CRD is missing is reported and
picked up once the CRD is installed, and an SLO made unattainable keeps the old plan
visible and told apart by generation. Also: an LLMRoute's status says where clients
send which model (the chart's router Service)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster
CHILD_KINDS = "deployments.apps,services,configmaps,rayservices.ray.io"
RAYSERVICE_CRD = "rayservices.ray.io"


def get(cluster: ClusterHandle, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def condition(cluster: ClusterHandle, name: str, ns: str, type_: str = "Ready") -> Any:
    status = get(cluster, "llmd", name, "-n", ns).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def deployment(name: str, ns: str, runtime: str = "triton", tpot_ms: int = 80
               ) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": name, "uri": "hf://org/m", "parametersBillions": 3},
                     "runtime": runtime, "engine": "simulated",
                     "accelerator": {"type": "L4", "gpusPerReplica": 1},
                     "replicas": 1, "minReplicas": 0,
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": tpot_ms}}}


def labelled(cluster: ClusterHandle, name: str, ns: str) -> set[tuple[str, str]]:
    """(kind, name) of every object carrying the deployment's label."""
    items = get(cluster, CHILD_KINDS, "-n", ns, "-l", f"tierserve.io/deployment={name}")
    return {(o["kind"], o["metadata"]["name"]) for o in items["items"]}


def pods(cluster: ClusterHandle, name: str, ns: str) -> list[Any]:
    items: list[Any] = get(cluster, "pods", "-n", ns, "-l",
                           f"tierserve.io/deployment={name}")["items"]
    return items


def events(cluster: ClusterHandle, name: str, ns: str, reason: str) -> list[Any]:
    items = get(cluster, "events", "-n", ns, "--field-selector",
                f"involvedObject.name={name},reason={reason}")["items"]
    return sorted(items, key=lambda e: str(e["message"]))


def patch(cluster: ClusterHandle, name: str, ns: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "llmd", name, "-n", ns, "--type=merge", "-p",
                    json.dumps({"spec": spec}))


TRITON = {("ConfigMap", "switch-model-repo"), ("Deployment", "switch"), ("Service", "switch")}
DECOY = ("ConfigMap", "switch-decoy")


def test_runtime_switch_prunes_old_children_and_nothing_it_does_not_own(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    operator_factory("prune", "-n", namespace).start()
    cluster.apply(deployment("switch", namespace))
    wait_until(lambda: labelled(cluster, "switch", namespace) == TRITON, 60, "Triton children")
    wait_until(lambda: bool(pods(cluster, "switch", namespace)), 60, "the Triton pod")
    # the operator's labels but no owner reference: not the operator's to delete
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": DECOY[1], "namespace": namespace,
                                "labels": {"app.kubernetes.io/managed-by": "tierserve",
                                           "tierserve.io/deployment": "switch"}},
                   "data": {"owner": "a person"}})

    patch(cluster, "switch", namespace, {"runtime": "rayServe"})
    wait_until(lambda: labelled(cluster, "switch", namespace) == {("RayService", "switch"),
                                                                   DECOY}, 90,
               "only the RayService (and the unowned ConfigMap) left")
    wait_until(lambda: not pods(cluster, "switch", namespace), 90, "the Triton pod gone")
    pruned = events(cluster, "switch", namespace, "Pruned")
    assert [e["message"] for e in pruned] == [
        "deleted ConfigMap switch-model-repo: no longer part of the desired state (runtime "
        "rayServe)",
        "deleted Deployment switch: no longer part of the desired state (runtime rayServe)",
        "deleted Service switch: no longer part of the desired state (runtime rayServe)"]
    assert {e["type"] for e in pruned} == {"Normal"}

    patch(cluster, "switch", namespace, {"runtime": "triton"})
    wait_until(lambda: labelled(cluster, "switch", namespace) == {*TRITON, DECOY}, 90,
               "Triton children back, the RayService pruned, the unowned ConfigMap kept")
    wait_until(lambda: len(events(cluster, "switch", namespace, "Pruned")) == 4, 30,
               "the RayService's Pruned Event")
    assert ("deleted RayService switch: no longer part of the desired state (runtime triton)"
            in [e["message"] for e in events(cluster, "switch", namespace, "Pruned")])
    wait_until(lambda: condition(cluster, "switch", namespace).get("status") == "True", 120,
               "Ready on Triton again")
    assert get(cluster, "configmap", DECOY[1], "-n", namespace)["data"] == {"owner": "a person"}


@pytest.fixture
def without_rayservice_crd(cluster: ClusterHandle) -> Iterator[list[str]]:
    """The RayService CRD deleted (KubeRay not installed); re-installed afterwards, also
    when the test fails, so the rest of the session has it. Yields the apply arguments."""
    from tierserve.dev.cluster import kuberay

    files = [str(f) for f in kuberay.crd_files() if f.name.startswith("ray.io_rayservices")]
    apply = ["apply", "--server-side", "--force-conflicts", "-f", files[0]]
    cluster.kubectl("delete", "crd", RAYSERVICE_CRD, "--wait=true", "--timeout=120s")
    try:
        yield apply
    finally:
        cluster.kubectl(*apply)
        wait_until(lambda: crd_established(cluster), 60, f"{RAYSERVICE_CRD} established")


def crd_established(cluster: ClusterHandle) -> bool:
    """(``kubectl wait`` fails instead while a fresh CRD has no conditions yet.)"""
    crd = cluster.get_json("crd", RAYSERVICE_CRD)
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def test_missing_runtime_crd_is_reported_then_picked_up_when_installed(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        without_rayservice_crd: list[str]) -> None:
    # a resync of an hour: what picks the object up below is the CRD's watch
    operator_factory("no-kuberay", "-n", namespace, "--resync-s", "3600").start()
    cluster.apply(deployment("needs-ray", namespace, runtime="rayServe"))
    wait_until(lambda: condition(cluster, "needs-ray", namespace).get("reason")
               == "RuntimeNotInstalled", 60, "Ready=False, RuntimeNotInstalled")
    ready = condition(cluster, "needs-ray", namespace)
    assert ready["status"] == "False"
    assert RAYSERVICE_CRD in ready["message"] and "RayService" in ready["message"]
    assert "helm install kuberay-operator kuberay/kuberay-operator" in ready["message"]
    (event,) = events(cluster, "needs-ray", namespace, "RuntimeNotInstalled")
    assert event["type"] == "Warning" and event["message"] == ready["message"]

    cluster.kubectl(*without_rayservice_crd)  # a platform team installs KubeRay's CRDs
    wait_until(lambda: cluster.exists("rayservice", "needs-ray", "-n", namespace), 60,
               "the RayService created once its CRD is installed")
    wait_until(lambda: condition(cluster, "needs-ray", namespace).get("reason")
               == "RuntimeNotReady", 60, "waiting for KubeRay, no longer RuntimeNotInstalled")
    assert len(events(cluster, "needs-ray", namespace, "RuntimeNotInstalled")) == 1


def test_unattainable_slo_on_a_live_object_keeps_the_old_plan_told_apart_by_generation(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    operator_factory("slo", "-n", namespace).start()
    cluster.apply(deployment("slo", namespace))
    wait_until(lambda: condition(cluster, "slo", namespace).get("status") == "True", 120,
               "Ready on generation 1")
    before = get(cluster, "llmd", "slo", "-n", namespace)["status"]
    assert before["sizing"]["observedGeneration"] == 1

    patch(cluster, "slo", namespace, {"slo": {"tpotP95Ms": 5}})  # L4 decodes in ~26 ms
    wait_until(lambda: condition(cluster, "slo", namespace).get("observedGeneration") == 2,
               60, "the conditions of generation 2")
    status = get(cluster, "llmd", "slo", "-n", namespace)["status"]
    assert status["observedGeneration"] == 2
    for c in status["conditions"]:
        assert c["observedGeneration"] == 2 and c["reason"] == "SLOUnattainable", c
    ready = condition(cluster, "slo", namespace)
    assert ready["status"] == "False"
    assert ready["message"].startswith("generation 2 cannot be planned: one decode step")
    assert ready["message"].endswith("keep serving generation 1's plan (status.sizing)")
    assert status["sizing"] == before["sizing"]  # what the running children still serve
    assert get(cluster, "deployment", "slo", "-n", namespace)["spec"]["replicas"] == 1
    (event,) = events(cluster, "slo", namespace, "SLOUnattainable")
    assert event["type"] == "Warning"

    patch(cluster, "slo", namespace, {"slo": {"tpotP95Ms": 80}})
    wait_until(lambda: (get(cluster, "llmd", "slo", "-n", namespace)["status"]["sizing"]
                        .get("observedGeneration")) == 3, 60, "generation 3 planned")
    wait_until(lambda: condition(cluster, "slo", namespace).get("status") == "True", 60,
               "Ready on generation 3")


def test_route_status_endpoint_is_the_charts_router_service(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    from e2e.helm_install import SYSTEM_NS

    operator = cluster.get_json("deployment", "tierserve-operator", "-n", SYSTEM_NS)
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    (flag,) = [a for a in args if a.startswith("--router-url=")]
    service = cluster.get_json("service", "tierserve-router", "-n", SYSTEM_NS)
    url = f"http://tierserve-router.{SYSTEM_NS}.svc:{service['spec']['ports'][0]['port']}/v1"
    assert flag == f"--router-url={url}"
    operator_factory("endpoint", "-n", namespace, flag).start()  # as the chart runs it
    cluster.apply({"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
                   "metadata": {"name": "chat", "namespace": namespace},
                   "spec": {"model": "chat", "tiers": {"fast": "small", "slow": "big"}}})

    def status() -> Any:
        return cluster.get_json("llmr", "chat", "-n", namespace).get("status") or {}

    wait_until(lambda: status().get("endpoint") == url, 60, "status.endpoint")
    assert status()["model"] == "chat"

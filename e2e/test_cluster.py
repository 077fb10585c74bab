"""The local control plane itself: health, simulated GPU nodes, scheduling, KubeRay, helm."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tierserve.core.catalog import GFD_PRODUCT_LABEL, get
from tierserve.dev.cluster import cluster as devcluster
from tierserve.dev.cluster import kuberay, nodes, paths
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster


def _pod(name: str, selector: dict[str, str] | None, gpus: int = 0) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                            "resources": resources}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _phase(cluster: ClusterHandle, name: str, ns: str) -> str:
    return str(cluster.get_json("pod", name, "-n", ns).get("status", {}).get("phase", ""))


def test_every_component_is_healthy(cluster: ClusterHandle) -> None:
    status = devcluster.component_status(cluster.layout)
    assert status == dict.fromkeys(devcluster.ORDER, "healthy")
    assert "readyz check passed" in cluster.kubectl("get", "--raw", "/readyz?verbose")


def test_server_is_local_and_version_skew_within_policy(cluster: ClusterHandle) -> None:
    assert cluster.server.startswith("https://127.0.0.1:")
    versions = json.loads(cluster.kubectl("version", "-o", "json"))
    server, client = versions["serverVersion"], versions["clientVersion"]
    assert server["gitVersion"] == paths.kubernetes_version()
    # kubectl is supported within one minor version of the API server
    assert server["major"] == client["major"] == "1"
    assert abs(int(server["minor"].rstrip("+")) - int(client["minor"].rstrip("+"))) <= 1
    # the machine's kubectl may be a dispatcher that picks a client per server; its own
    # (default) client version must be within the skew too
    default = json.loads(cluster.kubectl("version", "--client", "-o", "json"))["clientVersion"]
    assert abs(int(server["minor"].rstrip("+")) - int(default["minor"].rstrip("+"))) <= 1


def test_gpu_nodes_have_catalog_labels_and_capacity(cluster: ClusterHandle) -> None:
    live = {n["metadata"]["name"]: n for n in cluster.get_json("nodes")["items"]}
    expected = nodes.manifests(nodes.default_pools())
    assert set(live) == {n["metadata"]["name"] for n in expected}
    for want in expected:
        node = live[want["metadata"]["name"]]
        assert want["metadata"]["labels"].items() <= node["metadata"]["labels"].items()
        for key, value in want["status"]["allocatable"].items():
            assert node["status"]["allocatable"][key] == value, (node["metadata"]["name"], key)
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
    products = {n["metadata"]["labels"].get(GFD_PRODUCT_LABEL) for n in live.values()}
    assert {get(a).product_label[1] for a in ("H100-SXM", "L4", "A100-80GB")} <= products


def test_gpu_pod_is_scheduled_onto_an_l4_node_and_runs(cluster: ClusterHandle,
                                                        namespace: str) -> None:
    cluster.apply(_pod("l4", get("L4").node_selector(), gpus=1), namespace)
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/l4", "-n", namespace,
                    "--timeout=60s")
    pod = cluster.get_json("pod", "l4", "-n", namespace)
    node = cluster.get_json("node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"][GFD_PRODUCT_LABEL] == "NVIDIA-L4"
    assert pod["status"]["podIP"]
    tolerations = {t.get("key") for t in pod["spec"].get("tolerations", [])}
    assert "nvidia.com/gpu" in tolerations  # added by ExtendedResourceToleration


def test_cpu_pod_stays_off_gpu_nodes(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(_pod("cpu", None), namespace)
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/cpu", "-n", namespace,
                    "--timeout=60s")
    assert cluster.get_json("pod", "cpu", "-n", namespace)["spec"]["nodeName"].startswith("cpu-")


def test_pod_for_a_missing_gpu_type_stays_pending(cluster: ClusterHandle, namespace: str) -> None:
    cluster.apply(_pod("h200", get("H200").node_selector(), gpus=1), namespace)

    def unschedulable() -> bool:
        status = cluster.get_json("pod", "h200", "-n", namespace).get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        scheduled = conditions.get("PodScheduled", {})
        return bool(scheduled.get("status") == "False"
                    and scheduled.get("reason") == "Unschedulable")

    wait_until(unschedulable, 60, "the H200 pod to be reported unschedulable")
    events = cluster.get_json("events", "-n", namespace,
                              "--field-selector=involvedObject.name=h200,reason=FailedScheduling")
    assert events["items"], "expected a FailedScheduling event"
    assert "node(s) didn't match Pod's node affinity/selector" in events["items"][0]["message"]
    assert _phase(cluster, "h200", namespace) == "Pending"


def test_kuberay_crds_are_established(cluster: ClusterHandle) -> None:
    for crd in kuberay.CRDS:
        obj = cluster.get_json("crd", crd)
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert conditions["Established"] == "True"
    assert "rayservices" in cluster.kubectl("api-resources", "--api-group=ray.io", "-o", "name")


def test_helm_from_the_built_binary(cluster: ClusterHandle) -> None:
    helm = str(cluster.binary("helm"))
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True,
                             check=True, env=cluster.env()).stdout
    assert version.startswith(paths.module_version("helm.sh/helm/v3"))
    listing = subprocess.run([helm, "list", "-A", "--kubeconfig", str(cluster.kubeconfig)],
                             capture_output=True, text=True, check=False, env=cluster.env())
    assert listing.returncode == 0, listing.stderr


def test_up_twice_is_harmless(cluster: ClusterHandle) -> None:
    opts = devcluster.Options(name="e2e", state=cluster.layout.state, log=lambda _: None)
    again = devcluster.up(opts)
    assert again == cluster.layout
    assert devcluster.is_up(cluster.layout)

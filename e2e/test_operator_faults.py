"""Operator faults and access control against the real control plane."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster
CHILD_KINDS = "deployments.apps,services,configmaps"


def _objects(ns: str, n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
             "metadata": {"name": f"{prefix}-{i}", "namespace": ns},
             "spec": {"model": {"name": f"m{i}", "uri": "hf://org/m", "parametersBillions": 3},
                      "runtime": "triton", "engine": "simulated",
                      "accelerator": {"type": "L4", "gpusPerReplica": 1},
                      "replicas": 0, "minReplicas": 0,
                      "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80}}} for i in range(n)]


def _children(cluster: ClusterHandle, ns: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", CHILD_KINDS, "-n", ns, "-l",
                          "app.kubernetes.io/managed-by=tierserve", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _reconciled(cluster: ClusterHandle, ns: str) -> int:
    items = json.loads(cluster.kubectl("get", "llmd", "-n", ns, "-o", "json"))["items"]
    return sum(1 for o in items if (o.get("status") or {}).get("observedGeneration")
               == o["metadata"]["generation"])


def test_sigkill_mid_batch_then_restart_leaves_one_set_of_children(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    n = 50
    cluster.apply(_objects(namespace, n, "batch"))
    first = operator_factory("killed", "-n", namespace).start()
    wait_until(lambda: len(_children(cluster, namespace)) >= 15, 120, "some children")
    first.kill(signal.SIGKILL)
    done_at_kill = _reconciled(cluster, namespace)
    operator_factory("restarted", "-n", namespace).start()
    wait_until(lambda: _reconciled(cluster, namespace) == n, 180, "all 50 reconciled")
    wait_until(lambda: len(_children(cluster, namespace)) == 3 * n, 60, "150 children")
    kids = _children(cluster, namespace)
    per_owner = Counter((k["kind"], k["metadata"]["ownerReferences"][0]["name"]) for k in kids)
    assert set(per_owner.values()) == {1}, "duplicate children"
    owners = {f"batch-{i}" for i in range(n)}
    assert {name for _, name in per_owner} == owners, "orphans or missing children"
    assert done_at_kill < n, "the kill did not land mid-batch"


def test_two_replicas_only_the_leader_acts_and_the_other_takes_over(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any]) -> None:
    lease = f"lease-{namespace}"
    a = operator_factory("replica-a", "-n", namespace)
    b = operator_factory("replica-b", "-n", namespace)
    a.lease = b.lease = lease
    a.start()
    wait_until(lambda: "became leader" in a.logs(), 60, "replica-a leads")
    b.start()
    wait_until(lambda: "waiting for leadership" in b.logs(), 60, "replica-b waits")
    cluster.apply(_objects(namespace, 10, "pair"))
    wait_until(lambda: _reconciled(cluster, namespace) == 10, 120, "10 reconciled by the leader")
    assert "became leader" not in b.logs()
    follower = b.metrics()
    assert follower["tierserve_operator_api_writes_total"] == 0
    assert follower["tierserve_operator_reconciles_total"] == 0
    assert follower["tierserve_operator_leader"] == 0
    a.kill(signal.SIGKILL)
    wait_until(lambda: "became leader" in b.logs(), 60, "replica-b takes over after expiry")
    cluster.apply(_objects(namespace, 12, "pair"))
    wait_until(lambda: _reconciled(cluster, namespace) == 12, 120, "new objects reconciled by b")
    holder = json.loads(cluster.kubectl("get", "lease", lease, "-n", "tierserve-system",
                                        "-o", "json"))["spec"]["holderIdentity"]
    assert holder == "replica-b"


SA = "system:serviceaccount:tierserve-system:tierserve-operator"
ALLOWED = [
    ("list", "llmdeployments.tierserve.io"), ("watch", "llmroutes.tierserve.io"),
    ("patch", "llmdeployments.tierserve.io", "--subresource=status"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"), ("create", "services"), ("patch", "configmaps"),
    ("create", "rayservices.ray.io"), ("watch", "pods"), ("create", "events"),
    ("create", "leases.coordination.k8s.io", "-n", "tierserve-system"),
    # pruning: the child kinds it creates, nothing else (e2e/test_operator_changes.py)
    ("delete", "deployments.apps"), ("delete", "services"), ("delete", "configmaps"),
    ("delete", "rayservices.ray.io"),
]
DENIED = [
    ("get", "secrets"), ("list", "secrets"), ("delete", "secrets"), ("delete", "pods"),
    ("deletecollection", "deployments.apps"), ("delete", "llmroutes.tierserve.io"),
    ("delete", "rayclusters.ray.io"), ("delete", "customresourcedefinitions"),
    ("update", "llmdeployments.tierserve.io"), ("delete", "llmdeployments.tierserve.io"),
    ("create", "pods"), ("delete", "nodes"), ("create", "clusterrolebindings"),
    ("*", "*"), ("create", "leases.coordination.k8s.io", "-n", "default"),
    ("escalate", "clusterroles"), ("impersonate", "serviceaccounts"),
]


@pytest.mark.parametrize("check", ALLOWED, ids=[" ".join(c) for c in ALLOWED])
def test_operator_may(cluster: ClusterHandle, installed: Any, check: tuple[str, ...]) -> None:
    ns = [] if "-n" in check else ["-n", "default"]
    res = cluster.kubectl.run("auth", "can-i", *check, *ns, "--as", SA, check=False)
    assert res.stdout.strip() == "yes", res.stderr


@pytest.mark.parametrize("check", DENIED, ids=[" ".join(c) for c in DENIED])
def test_operator_may_not(cluster: ClusterHandle, installed: Any,
                          check: tuple[str, ...]) -> None:
    ns = [] if "-n" in check else ["-n", "default"]
    res = cluster.kubectl.run("auth", "can-i", *check, *ns, "--as", SA, check=False)
    assert res.stdout.strip() == "no"


ROUTER = "system:serviceaccount:tierserve-system:tierserve-router"
ROUTER_CHECKS = [
    ("yes", "watch", "llmroutes.tierserve.io"), ("yes", "list", "llmdeployments.tierserve.io"),
    ("yes", "patch", "llmroutes.tierserve.io", "--subresource=status"),
    ("yes", "watch", "endpointslices.discovery.k8s.io"),
    ("yes", "get", "llmdeployments.tierserve.io", "--subresource=scale"),
    ("yes", "patch", "llmdeployments.tierserve.io", "--subresource=scale"),
    ("no", "update", "llmdeployments.tierserve.io", "--subresource=scale"),
    ("no", "patch", "llmdeployments.tierserve.io"), ("no", "get", "secrets"),
    ("no", "create", "deployments.apps"), ("no", "patch", "llmroutes.tierserve.io"),
]


@pytest.mark.parametrize("check", ROUTER_CHECKS, ids=[" ".join(c) for c in ROUTER_CHECKS])
def test_router_service_account_rbac(cluster: ClusterHandle, installed: Any,
                                     check: tuple[str, ...]) -> None:
    expected, *args = check
    res = cluster.kubectl.run("auth", "can-i", *args, "-n", "default", "--as", ROUTER,
                              check=False)
    assert res.stdout.strip() == expected, res.stderr


def _router_docs(cluster: ClusterHandle, *values: str) -> list[dict[str, Any]]:
    """The chart's router objects as ``helm template`` renders them (release tierserve)."""
    import subprocess
    from pathlib import Path

    import yaml

    chart = Path(__file__).resolve().parents[1] / "charts" / "tierserve"
    res = subprocess.run([str(cluster.binary("helm")), "template", "tierserve", str(chart),
                          "-n", "tierserve-system", "--show-only", "templates/router.yaml",
                          "--set", "autoscaler.enabled=false", *values],
                         capture_output=True, text=True, env=cluster.env(),
                         check=True)
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def test_router_api_keys_secret_rbac_is_one_secret_by_name(cluster: ClusterHandle,
                                                           installed: Any) -> None:
    """``router.apiKeysSecret``: a Role for that Secret only, and the router's flag."""
    plain = _router_docs(cluster)
    assert "secrets" not in json.dumps(plain)
    docs = _router_docs(cluster, "--set", "router.apiKeysSecret=router-keys")
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == "tierserve-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                              "resourceNames": ["router-keys"],
                              "verbs": ["get", "list", "watch"]}]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--api-keys-secret=tierserve-system/router-keys" in args
    access = [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    cluster.apply(access)
    try:
        for expected, verb, resource, ns in [
                ("yes", "get", "secrets/router-keys", "tierserve-system"),
                ("yes", "watch", "secrets/router-keys", "tierserve-system"),
                ("no", "get", "secrets/other", "tierserve-system"),
                ("no", "list", "secrets", "tierserve-system"),
                ("no", "get", "secrets/router-keys", "default")]:
            res = cluster.kubectl.run("auth", "can-i", verb, resource, "-n", ns, "--as",
                                      ROUTER, check=False)
            assert res.stdout.strip() == expected, (verb, resource, ns, res.stderr)
    finally:
        for d in access:
            cluster.kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], "-n",
                                "tierserve-system", check=False)


AUTOSCALER = "system:serviceaccount:tierserve-system:tierserve-autoscaler"
AUTOSCALER_CHECKS = [
    ("yes", "get", "llmdeployments.tierserve.io"),
    ("yes", "list", "llmdeployments.tierserve.io"),
    ("yes", "watch", "llmdeployments.tierserve.io"),
    ("yes", "patch", "llmdeployments.tierserve.io", "--subresource=scale"),
    ("yes", "patch", "llmdeployments.tierserve.io", "--subresource=status"),
    ("yes", "create", "events"),
    ("no", "update", "llmdeployments.tierserve.io"),
    ("no", "patch", "llmdeployments.tierserve.io"),
    ("no", "update", "llmdeployments.tierserve.io", "--subresource=scale"),
    ("no", "update", "llmdeployments.tierserve.io", "--subresource=status"),
    ("no", "delete", "llmdeployments.tierserve.io"),
    ("no", "create", "llmdeployments.tierserve.io"),
    ("no", "delete", "events"), ("no", "delete", "deployments.apps"),
    ("no", "delete", "pods"), ("no", "list", "pods"), ("no", "get", "pods"),
    ("no", "get", "secrets"), ("no", "list", "secrets"),
    ("no", "patch", "deployments.apps"), ("no", "patch", "rayservices.ray.io"),
    ("no", "list", "llmroutes.tierserve.io"),
    ("no", "create", "leases.coordination.k8s.io"),
    ("no", "*", "*"),
    # the default install scrapes the engines itself: Triton pods from EndpointSlices
    ("yes", "list", "endpointslices.discovery.k8s.io"),
    ("yes", "watch", "endpointslices.discovery.k8s.io"),
    ("no", "create", "endpointslices.discovery.k8s.io"),
]


@pytest.mark.parametrize("check", AUTOSCALER_CHECKS, ids=[" ".join(c) for c in AUTOSCALER_CHECKS])
def test_autoscaler_service_account_rbac(cluster: ClusterHandle, installed: Any,
                                         check: tuple[str, ...]) -> None:
    expected, *args = check
    for ns in ("default", "tierserve-system"):
        res = cluster.kubectl.run("auth", "can-i", *args, "-n", ns, "--as", AUTOSCALER,
                                  check=False)
        assert res.stdout.strip() == expected, (ns, res.stderr)


def test_chart_installs_the_autoscaler_deployment(cluster: ClusterHandle,
                                                  installed: Any) -> None:
    """``helm upgrade --install`` (default values) created the autoscaler's Deployment
    under its own ServiceAccount, scraping the engines itself (no Prometheus URL)."""
    from e2e.helm_install import AUTOSCALER_SA, SYSTEM_NS

    dep = cluster.get_json("deployment", "tierserve-autoscaler", "-n", SYSTEM_NS)
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == AUTOSCALER_SA
    args = pod["containers"][0]["args"]
    assert args[:2] == ["autoscaler", "--in-cluster"]
    assert not [a for a in args if a.startswith("--prometheus-url")]
    assert cluster.exists("serviceaccount", AUTOSCALER_SA, "-n", SYSTEM_NS)
    wait_until(lambda: (cluster.get_json("deployment", "tierserve-autoscaler", "-n", SYSTEM_NS)
                      .get("status") or {}).get("readyReplicas") == 1, 120,
             "the autoscaler's (kwok) pod ready")


def test_autoscaler_calls_succeed_under_its_service_account(
        cluster: ClusterHandle, installed: Any, namespace: str, tmp_path: Any) -> None:
    """What the autoscaler actually calls, as its ServiceAccount: discovery's cluster-wide
    list, and KubeScaleWriter's get, scale patch with its Event, and status patch."""
    import asyncio

    from e2e.helm_install import AUTOSCALER_SA, service_account_kubeconfig
    from tierserve.core.api.deployment import API_VERSION
    from tierserve.core.kube.client import KubeApi
    from tierserve.core.kube.scale import KubeScaleWriter

    cluster.apply(_objects(namespace, 1, "scaled"))
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig", AUTOSCALER_SA)

    async def act() -> None:
        api = await KubeApi.connect(str(kubeconfig))
        try:
            listed = await api.list(API_VERSION, "LLMDeployment", None)
            assert (namespace, "scaled-0") in {
                (o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed}
            writer = KubeScaleWriter(api)
            assert await writer.get_scale(namespace, "scaled-0") == (0, 0)
            await writer.set_scale(namespace, "scaled-0", 2, "e2e demand 1.7 replicas")
            await writer.record_status(namespace, "scaled-0",
                                       {"attainment": 0.995, "targetAttainment": 0.99})
        finally:
            await api.close()

    asyncio.run(act())
    obj = cluster.get_json("llmdeployment", "scaled-0", "-n", namespace)
    assert obj["spec"]["replicas"] == 2
    assert obj["status"]["slo"]["attainment"] == 0.995
    events = cluster.get_json("events", "-n", namespace,
                              "--field-selector", "reason=Scaled")["items"]
    assert [e["message"] for e in events] == ["scaled to 2: e2e demand 1.7 replicas"]


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "operator.replicas=0"], "/operator/replicas"),
    (["--set", "router.port=80"], "/router/port"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["--set", "operator.unknown=1"], "additional properties 'unknown' not allowed"),
    (["--set", "router.apiKeysSecret=ns/name"], "/router/apiKeysSecret"),
    (["--set", "autoscaler.prometheusUrl=prometheus:9090"], "/autoscaler/prometheusUrl"),
])
def test_helm_rejects_invalid_values(cluster: ClusterHandle, values: list[str],
                                     message: str) -> None:
    import subprocess
    from pathlib import Path

    chart = Path(__file__).resolve().parents[1] / "charts" / "tierserve"
    res = subprocess.run([str(cluster.binary("helm")), "template", "x", str(chart), *values],
                         capture_output=True, text=True, env=cluster.env())
    assert res.returncode != 0 and message in res.stderr, res.stderr

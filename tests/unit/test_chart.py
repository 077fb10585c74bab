"""The Helm chart as ``helm template`` renders it (the cached, pinned helm binary; no cluster).

The autoscaler's Deployment and least-privilege RBAC, the values schema's checks, and the
engines' PodMonitor giving series exactly the labels the autoscaler's PromQL selects on.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierserve.autoscaler.sources import PromQueries
from tierserve.core.builders.common import DEPLOYMENT_LABEL
from tierserve.dev.cluster import build

CHART = Path(__file__).resolve().parents[2] / "charts" / "tierserve"
URL = "http://prometheus-operated.monitoring.svc:9090"


@pytest.fixture(scope="module")
def helm() -> str:
    path = build.binary("helm").path
    if not path.is_file():
        message = f"helm is not built ({path}); `tierserve-dev cluster build` builds it"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(path)


def _run(helm: str, *values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, "template", "tierserve", str(CHART), "-n", "mp-system",
                           *values], capture_output=True, text=True, timeout=60)


def _render(helm: str, *values: str) -> list[dict[str, Any]]:
    res = _run(helm, *values)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def _component(docs: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [d for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]


def test_autoscaler_deployment_args_and_one_replica(helm: str) -> None:
    docs = _render(helm, "--set", f"autoscaler.prometheusUrl={URL}",
                   "--set", "autoscaler.intervalSeconds=15")
    [dep] = [d for d in _component(docs, "autoscaler") if d["kind"] == "Deployment"]
    assert dep["metadata"]["name"] == "tierserve-autoscaler"
    assert dep["spec"]["replicas"] == 1  # no leader election in the process
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # never two during an upgrade
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tierserve-autoscaler"
    [container] = pod["containers"]
    assert container["args"] == ["autoscaler", "--in-cluster", f"--prometheus-url={URL}",
                                 "--interval-s=15", "--metrics-port=8080",
                                 "--metrics-host=0.0.0.0"]
    operator = next(d for d in docs if d["kind"] == "Deployment"
                    and d["metadata"]["name"] == "tierserve-operator")
    op_container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == op_container["image"]
    assert container["securityContext"] == op_container["securityContext"]
    # its own metrics port, which the probes check
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_autoscaler_rbac_is_exactly_what_it_calls(helm: str) -> None:
    docs = _component(_render(helm, "--set", f"autoscaler.prometheusUrl={URL}"), "autoscaler")
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    assert role["rules"] == [
        {"apiGroups": ["tierserve.io"], "resources": ["llmdeployments"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["tierserve.io"], "resources": ["llmdeployments/scale"],
         "verbs": ["patch"]},
        {"apiGroups": ["tierserve.io"], "resources": ["llmdeployments/status"],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    [binding] = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tierserve-autoscaler",
                                    "namespace": "mp-system"}]
    assert {d["kind"] for d in docs} == {"Deployment", "ServiceAccount", "ClusterRole",
                                         "ClusterRoleBinding"}


def test_autoscaler_namespace_binds_in_that_namespace_only(helm: str) -> None:
    docs = _component(_render(helm, "--set", f"autoscaler.prometheusUrl={URL}",
                              "--set", "autoscaler.namespace=team-a"), "autoscaler")
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    [binding] = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["metadata"]["namespace"] == "team-a"
    assert binding["roleRef"]["kind"] == "ClusterRole"
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert "--namespace=team-a" in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_autoscaler_disabled_renders_nothing(helm: str) -> None:
    docs = _render(helm, "--set", "autoscaler.enabled=false")
    assert not _component(docs, "autoscaler")
    assert "autoscaler" not in yaml.safe_dump_all(docs)
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == {
        "tierserve-operator", "tierserve-router"}


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "autoscaler.prometheusUrl=http://"], "at '/autoscaler/prometheusUrl'"),
    (["--set", "autoscaler.prometheusUrl=ftp://p:9090"], "at '/autoscaler/prometheusUrl'"),
    (["--set", "autoscaler.prometheusUrl=prometheus:9090"], "at '/autoscaler/prometheusUrl'"),
    (["--set", f"autoscaler.prometheusUrl={URL}", "--set", "autoscaler.intervalSeconds=0"],
     "at '/autoscaler/intervalSeconds'"),
    (["--set", f"autoscaler.prometheusUrl={URL}", "--set", "autoscaler.replicas=2"],
     "additional properties 'replicas' not allowed"),
    (["--set", "monitoring.interval=often", "--set", "autoscaler.enabled=false"],
     "at '/monitoring/interval'"),
])
def test_schema_rejects(helm: str, values: list[str], message: str) -> None:
    res = _run(helm, *values)
    assert res.returncode != 0
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert message in res.stderr, res.stderr


def test_podmonitor_off_by_default(helm: str) -> None:
    docs = _render(helm, "--set", f"autoscaler.prometheusUrl={URL}")
    assert not [d for d in docs if d["kind"] == "PodMonitor"]


def _relabel(rules: list[dict[str, Any]], meta: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' relabelling (replace, keep, keepequal; defaults: separator ';',
    regex (.*), $1); None: the target is dropped. Returns the labels plus
    __address__ / __metrics_path__."""
    out = dict(meta)
    for rule in rules:
        action = rule.get("action", "replace")
        value = ";".join(out.get(s, "") for s in rule["sourceLabels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if action == "keep":
            if not match:
                return None
        elif action == "keepequal":
            if value != out.get(rule["targetLabel"], ""):
                return None
        else:
            assert action == "replace"
            if match:
                out[rule["targetLabel"]] = match.expand(
                    rule.get("replacement", "$1").replace("$1", r"\1"))
    return {k: v for k, v in out.items()
            if not k.startswith("__") or k in ("__address__", "__metrics_path__")}


def _pod_targets(pod: dict[str, Any], default_path: str) -> list[dict[str, str]]:
    """Prometheus' pod service discovery: one target per declared container port."""
    meta = pod["metadata"]
    base = {"__meta_kubernetes_namespace": meta["namespace"],
            "__meta_kubernetes_pod_name": meta["name"], "__metrics_path__": default_path}
    for key, value in meta.get("labels", {}).items():
        base["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    for key, value in meta.get("annotations", {}).items():
        base["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    out = []
    for container in pod["spec"]["containers"]:
        for port in container.get("ports", []):
            out.append({**base, "__address__": f"10.0.0.1:{port['containerPort']}",
                        "__meta_kubernetes_pod_container_port_number":
                            str(port["containerPort"]),
                        "__meta_kubernetes_pod_container_port_name": port["name"]})
    return out


def test_podmonitor_labels_match_the_autoscaler_selector(helm: str) -> None:
    docs = _render(helm, "--set", "autoscaler.enabled=false",
                   "--set", "monitoring.engines.enabled=true",
                   "--set", "monitoring.labels.release=kube-prometheus-stack")
    [pm] = [d for d in docs if d["kind"] == "PodMonitor"]
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["namespace"] == "mp-system"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    # the pods the builders label (tierserve.core.builders.common.labels)
    assert pm["spec"]["selector"]["matchExpressions"] == [
        {"key": DEPLOYMENT_LABEL, "operator": "Exists"}]
    [endpoint] = pm["spec"]["podMetricsEndpoints"]
    assert "port" not in endpoint  # the prometheus.io/port annotation picks the port
    # Prometheus' service discovery meta labels for pod "llama-0" of LLMDeployment
    # "llama" in namespace "team-a" (label names sanitized: [^a-zA-Z0-9_] -> _)
    meta_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_",
                                                         DEPLOYMENT_LABEL)
    labels = _relabel(endpoint["relabelings"], {
        "__meta_kubernetes_namespace": "team-a", meta_label: "llama",
        "__meta_kubernetes_pod_name": "llama-0",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "8002",
        "__meta_kubernetes_pod_container_port_number": "8002"})
    assert labels is not None
    labels = {k: v for k, v in labels.items() if not k.startswith("__")}
    assert labels == {"namespace": "team-a", "deployment": "llama",
                      "tierserve_io_deployment": "llama", "pod": "llama-0"}
    # ... which is exactly what the autoscaler's default PromQL selector asks for
    selector = PromQueries().selector.format(ns="team-a", name="llama")
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', selector))
    assert wanted and wanted.items() <= labels.items()


def test_podmonitor_namespaces(helm: str) -> None:
    docs = _render(helm, "--set", "autoscaler.enabled=false",
                   "--set", "monitoring.engines.enabled=true",
                   "--set", "monitoring.namespace=monitoring",
                   "--set", "monitoring.engines.namespaces={team-a,team-b}")
    [pm] = [d for d in docs if d["kind"] == "PodMonitor"]
    assert pm["metadata"]["namespace"] == "monitoring"
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def _built_pods() -> dict[str, dict[str, Any]]:
    """Pods as KubeRay / the ReplicaSet would create them from the builders' templates."""
    from tierserve.core.builders import BuildSettings, build_children
    from tierserve.core.builders.context import from_object

    examples = CHART.parents[1] / "examples"
    docs = {d["metadata"]["name"]: d for f in sorted(examples.glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") == "LLMDeployment"}
    pods: dict[str, dict[str, Any]] = {}

    def pod(name: str, template: dict[str, Any], ns: str = "team-a") -> dict[str, Any]:
        return {"metadata": {**template["metadata"], "name": name, "namespace": ns},
                "spec": template["spec"]}

    for engine in ("simulated", "vllm"):
        ray = docs["llama-8b-ray"] | {"spec": docs["llama-8b-ray"]["spec"] | {"engine": engine}}
        ray["metadata"] = ray["metadata"] | {"uid": "u1"}
        (svc,) = build_children(from_object(ray, BuildSettings()))
        cluster = svc["spec"]["rayClusterConfig"]
        head = pod("head", cluster["headGroupSpec"]["template"])
        worker = pod("worker", cluster["workerGroupSpecs"][0]["template"])
        for p in (head, worker):  # KubeRay adds Ray's metrics export port to every Ray pod
            c = p["spec"]["containers"][0] = dict(p["spec"]["containers"][0])
            c["ports"] = [*c.get("ports", []), {"name": "metrics", "containerPort": 8080}]
        pods[f"ray-{engine}-head"], pods[f"ray-{engine}-worker"] = head, worker
    triton = docs["llama-8b-triton"] | {"metadata": docs["llama-8b-triton"]["metadata"]
                                        | {"uid": "u2"}}
    dep = build_children(from_object(triton, BuildSettings()))[1]
    pods["triton"] = pod("triton-0", dep["spec"]["template"])
    return pods


def test_podmonitor_scrapes_one_engine_target_per_deployment(helm: str) -> None:
    docs = _render(helm, "--set", "autoscaler.enabled=false",
                   "--set", "monitoring.engines.enabled=true")
    [pm] = [d for d in docs if d["kind"] == "PodMonitor"]
    [endpoint] = pm["spec"]["podMetricsEndpoints"]
    matched = pm["spec"]["selector"]["matchLabels"].items()

    def targets(pod: dict[str, Any]) -> list[tuple[str, str]]:
        labels = pod["metadata"]["labels"]
        assert matched <= labels.items() and DEPLOYMENT_LABEL in labels  # selected
        out = [_relabel(endpoint["relabelings"], t)
               for t in _pod_targets(pod, endpoint["path"])]
        return [(t["__address__"], t["__metrics_path__"]) for t in out if t]

    pods = _built_pods()
    # Triton: its metrics port; the Ray head of the simulated engine: the Serve HTTP port
    # where the ingress serves /metrics (under route prefix "/"), not Ray's own 8080
    assert targets(pods["triton"]) == [("10.0.0.1:8002", "/metrics")]
    assert targets(pods["ray-simulated-head"]) == [("10.0.0.1:8000", "/metrics")]
    # workers (no ingress) and real vLLM on Ray (ray_vllm_* names): not engine targets
    for name in ("ray-simulated-worker", "ray-vllm-head", "ray-vllm-worker"):
        assert targets(pods[name]) == [], name
    # a custom path in the annotation wins over the endpoint's default
    custom = pods["ray-simulated-head"]
    custom["metadata"] = custom["metadata"] | {
        "annotations": custom["metadata"]["annotations"] | {"prometheus.io/path": "/llm/metrics"}}
    assert targets(custom) == [("10.0.0.1:8000", "/llm/metrics")]


def test_podmonitor_named_port_override(helm: str) -> None:
    docs = _render(helm, "--set", "autoscaler.enabled=false",
                   "--set", "monitoring.engines.enabled=true",
                   "--set", "monitoring.engines.port=metrics")
    [pm] = [d for d in docs if d["kind"] == "PodMonitor"]
    [endpoint] = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    # the Prometheus Operator keeps the named port; no annotation-port filter on top
    assert "keepequal" not in {r.get("action") for r in endpoint["relabelings"]}


def test_router_replicas_elect_the_ab_writer_with_their_own_lease(helm: str) -> None:
    docs = _render(helm, "--set", f"autoscaler.prometheusUrl={URL}")
    [dep] = [d for d in docs if d["kind"] == "Deployment"
             and d["metadata"]["name"] == "tierserve-router"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--router-service=mp-system/tierserve-router" in args
    [role] = [d for d in docs if d["kind"] == "Role"
              and d["metadata"]["name"] == "tierserve-router-ab-writer"]
    assert role["metadata"]["namespace"] == "mp-system"
    assert role["rules"] == [  # create cannot name its object; the rest is this Lease only
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["tierserve-router-ab-writer"], "verbs": ["get", "update"]}]
    [binding] = [d for d in docs if d["kind"] == "RoleBinding"
                 and d["metadata"]["name"] == "tierserve-router-ab-writer"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tierserve-router",
                                    "namespace": "mp-system"}]

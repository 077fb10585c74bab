"""The chart's ``monitoring`` values with the real helm: each toggle is off by default and
renders nothing; on, it renders its objects (checked against the Prometheus Operator's
own CRD schemas): ServiceMonitors with a ``metrics`` Service per component, the
PrometheusRule carrying ``dashboards/rules/`` verbatim, the dashboards as ConfigMaps for
Grafana's sidecar; the schema's messages for bad values. The engines' PodMonitor has its
own tests in test_chart.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit import chart_support as cs
from tierserve.dev.cluster import build, prometheus_operator

helm = pytest.fixture(scope="module")(cs.helm_binary)
TOGGLES = ("operator", "router", "autoscaler", "engines", "rules", "dashboards")
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ROOT = cs.CHART.parents[1]


def _on(*toggles: str) -> list[str]:
    return [a for t in toggles for a in ("--set", f"monitoring.{t}.enabled=true")]


def _monitoring(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects the monitoring toggles render (and nothing else)."""
    def ours(d: dict[str, Any]) -> bool:
        labels = d["metadata"].get("labels", {})
        return (d["kind"] in MONITORING_KINDS or "tierserve.io/metrics" in labels
                or labels.get("app.kubernetes.io/component") == "dashboards")
    return [d for d in docs if ours(d)]


@pytest.fixture(scope="module")
def crd_schemas() -> dict[str, dict[str, Any]]:
    try:
        return {k: prometheus_operator.schema(k) for k in sorted(MONITORING_KINDS)}
    except (build.BuildFailed, build.BuildUnavailable) as exc:
        pytest.skip(f"the Prometheus Operator's CRDs: {exc}")


def test_everything_off_by_default(helm: str) -> None:
    assert _monitoring(cs.render(helm)) == []


@pytest.mark.parametrize("toggle", TOGGLES)
def test_each_toggle_renders_only_its_own_valid_objects(
        helm: str, toggle: str, crd_schemas: dict[str, dict[str, Any]]) -> None:
    docs = _monitoring(cs.render(helm, *_on(toggle)))
    expected = {"operator": {"Service", "ServiceMonitor"}, "router": {"Service", "ServiceMonitor"},
                "autoscaler": {"Service", "ServiceMonitor"}, "engines": {"PodMonitor"},
                "rules": {"PrometheusRule"}, "dashboards": {"ConfigMap"}}[toggle]
    assert {d["kind"] for d in docs} == expected
    for d in docs:
        if d["kind"] in crd_schemas:
            assert d["apiVersion"] == "monitoring.coreos.com/v1"
            _validate(d, crd_schemas[d["kind"]])


def _validate(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    # not jsonschema.validate: that checks the schema first, and Go's RE2 patterns in
    # it (a `(?i)` after `^`) are no Python regex; the ones our objects meet compile
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_the_crd_schemas_do_check(crd_schemas: dict[str, dict[str, Any]]) -> None:
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
           "metadata": {"name": "x"},
           "spec": {"selector": {}, "endpoints": [{"port": "metrics", "honorLabels": "yes"}]}}
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'"):
        _validate(bad, crd_schemas["ServiceMonitor"])


@pytest.mark.parametrize("component", ["router", "autoscaler"])
def test_no_servicemonitor_for_a_component_not_installed(helm: str, component: str) -> None:
    docs = cs.render(helm, "--set", f"{component}.enabled=false", *_on(component))
    assert _monitoring(docs) == []


def _container_ports(docs: list[dict[str, Any]], component: str) -> set[str]:
    return {p["name"] for c in cs.pod_spec(docs, component)["containers"]
            for p in c.get("ports", [])}


@pytest.mark.parametrize("component", ["operator", "router", "autoscaler"])
def test_servicemonitor_scrapes_the_components_pods(helm: str, component: str) -> None:
    docs = cs.render(helm, *_on(component), "--set", "monitoring.interval=30s",
                     "--set", "monitoring.namespace=monitoring",
                     "--set", "monitoring.labels.release=kube-prometheus-stack")
    svc = cs.find(docs, "Service", f"tierserve-{component}-metrics")
    sm = cs.find(docs, "ServiceMonitor", f"tierserve-{component}")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["mp-system"]}
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                        "interval": "30s", "honorLabels": True}]
    # it selects exactly the metrics Service (not the router's API Service) ...
    selected = [d for d in docs if d["kind"] == "Service"
                and sm["spec"]["selector"]["matchLabels"].items()
                <= d["metadata"].get("labels", {}).items()]
    assert selected == [svc]
    assert svc["metadata"]["namespace"] == "mp-system" and svc["spec"]["clusterIP"] == "None"
    # ... whose port `metrics` reaches a named container port of the component's pods
    [port] = svc["spec"]["ports"]
    assert port["name"] == "metrics"
    assert port["targetPort"] in _container_ports(docs, component)
    pod_labels = cs.find(docs, "Deployment", f"tierserve-{component}")["spec"]["template"][
        "metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def _rule_groups() -> list[dict[str, Any]]:
    return [g for f in sorted((ROOT / "dashboards" / "rules").glob("*.yaml"))
            for g in yaml.safe_load(f.read_text())["groups"]]


def test_prometheusrule_carries_the_rule_files_verbatim(helm: str) -> None:
    docs = cs.render(helm, *_on("rules"), "--set", "monitoring.labels.release=kps")
    rule = cs.find(docs, "PrometheusRule", "tierserve-rules")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"]["groups"] == _rule_groups()
    # the alerts' own templates reach Prometheus unrendered
    assert "{{ $labels.namespace }}" in json.dumps(rule["spec"])


def test_dashboards_one_configmap_each_for_the_sidecar(helm: str) -> None:
    files = sorted((cs.CHART / "dashboards").glob("*.json"))
    assert files
    docs = cs.render(helm, *_on("dashboards"))
    maps = [d for d in _monitoring(docs) if d["kind"] == "ConfigMap"]
    assert len(maps) == len(files)
    for f in files:
        cm = cs.find(docs, "ConfigMap", "tierserve-dashboard-"
                     + f.stem.removeprefix("tierserve-"))
        assert cm["metadata"]["namespace"] == "mp-system"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Tierserve"}
        assert cm["data"] == {f.name: f.read_text()}
        json.loads(cm["data"][f.name])


def test_dashboards_label_folder_and_namespace_are_configurable(helm: str) -> None:
    docs = cs.render(helm, *_on("dashboards"), "--set", "monitoring.dashboards.namespace=grafana",
                     "--set", "monitoring.dashboards.label=example.com/dashboard",
                     "--set", "monitoring.dashboards.labelValue=tierserve",
                     "--set", "monitoring.dashboards.folderAnnotation=example.com/folder",
                     "--set", "monitoring.dashboards.folder=LLM serving")
    for cm in (d for d in _monitoring(docs) if d["kind"] == "ConfigMap"):
        assert cm["metadata"]["namespace"] == "grafana"
        assert cm["metadata"]["labels"]["example.com/dashboard"] == "tierserve"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["annotations"] == {"example.com/folder": "LLM serving"}
    docs = cs.render(helm, *_on("dashboards"), "--set", "monitoring.dashboards.folder=")
    assert all("annotations" not in d["metadata"] for d in _monitoring(docs))


@pytest.mark.parametrize(("toggle", "folder", "message"), [
    ("rules", "rules", "the chart has no rules/*.yaml (run `make rules` before packaging)"),
    ("dashboards", "dashboards",
     "the chart has no dashboards/*.json (run `tierserve dashboards generate`)"),
])
def test_a_chart_without_the_files_refuses_the_toggle(
        helm: str, tmp_path: Path, toggle: str, folder: str, message: str) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(cs.CHART, chart)
    shutil.rmtree(chart / folder)
    res = cs.run(helm, *_on(toggle), chart=chart)
    assert res.returncode != 0 and message in res.stderr, res.stderr


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "monitoring.operator.enabled=yes"],
     "at '/monitoring/operator/enabled': got string, want boolean"),
    (["--set", "monitoring.operators.enabled=true"],
     "additional properties 'operators' not allowed"),
    (["--set", "monitoring.interval=often"], "at '/monitoring/interval'"),
    (["--set", "monitoring.namespace=Monitoring"], "at '/monitoring/namespace'"),
    (["--set", "monitoring.labels.bad label=x"], "invalid propertyName 'bad label'"),
    (["--set", "monitoring.dashboards.label=app.kubernetes.io/component"],
     "at '/monitoring/dashboards/label'"),
    (["--set", "monitoring.dashboards.label=has space"], "at '/monitoring/dashboards/label'"),
    (["--set", "monitoring.dashboards.labelValue="], "at '/monitoring/dashboards/labelValue'"),
    (["--set", "monitoring.engines.port=Metrics_Port"], "at '/monitoring/engines/port'"),
])
def test_schema_rejects(helm: str, values: list[str], message: str) -> None:
    assert message in cs.rejected(helm, *values)

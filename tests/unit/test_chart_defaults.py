"""A default ``helm install`` works: no value is required, the autoscaler scrapes the
engines itself without a Prometheus URL (and may read EndpointSlices only then), and
NOTES.txt says what is on, what is off and how to turn it on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import chart_support as cs

URL = "http://prometheus-operated.monitoring.svc:9090"
SLICES = {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
          "verbs": ["list", "watch"]}

helm = pytest.fixture(scope="module")(cs.helm_binary)


def test_defaults_render_every_component(helm: str) -> None:
    docs = cs.render(helm)
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == {
        "tierserve-operator", "tierserve-router", "tierserve-autoscaler"}
    [container] = cs.pod_spec(docs, "autoscaler")["containers"]
    assert container["args"][:2] == ["autoscaler", "--in-cluster"]
    assert not [a for a in container["args"] if a.startswith("--prometheus-url")]
    role = cs.find(docs, "ClusterRole", "tierserve-autoscaler")
    assert SLICES in role["rules"]  # the direct scrape finds Triton pods in their slices


def test_a_prometheus_url_replaces_the_direct_scrape_and_its_rbac(helm: str) -> None:
    docs = cs.render(helm, "--set", f"autoscaler.prometheusUrl={URL}")
    [container] = cs.pod_spec(docs, "autoscaler")["containers"]
    assert f"--prometheus-url={URL}" in container["args"]
    assert SLICES not in cs.find(docs, "ClusterRole", "tierserve-autoscaler")["rules"]


def test_notes_by_default(helm: str, tmp_path: Path) -> None:
    text = cs.notes(helm, tmp_path)
    on, off = text.split("\nOFF")
    assert "release tierserve in namespace mp-system" in text
    assert "operator: 2 replica(s)" in on and "watching all namespaces" in on
    assert "OpenAI API at http://tierserve-router.mp-system.svc/v1" in on
    assert "autoscaler: scrapes the engines directly (no Prometheus)" in on
    assert "router authentication" in off and "--set router.apiKeysSecret=<name>" in off
    assert "--set autoscaler.prometheusUrl=" in off
    assert "--set monitoring.engines.enabled=true" in off
    assert "--set monitoring.<x>.enabled=true" in off
    assert "helm test tierserve -n mp-system" in text


def test_notes_with_everything_on(helm: str, tmp_path: Path) -> None:
    text = cs.notes(helm, tmp_path, "--set", f"autoscaler.prometheusUrl={URL}",
                    "--set", "router.apiKeysSecret=keys",
                    "--set", "operator.watchNamespaces={team-a,team-b}",
                    *[a for x in ("operator", "router", "autoscaler", "engines", "rules",
                                  "dashboards") for a in ("--set", f"monitoring.{x}.enabled=true")])
    on, off = text.split("\nOFF")
    assert f"metrics from Prometheus at {URL}" in on
    assert "API keys from the Secret mp-system/keys" in on
    assert "PodMonitor tierserve-engines" in on and "watching team-a, team-b" in on
    assert "ServiceMonitors for the operator, router, autoscaler" in on
    assert "PrometheusRule tierserve-rules" in on
    assert "ConfigMaps labelled grafana_dashboard=1 in mp-system" in on
    assert "  * " not in off.split("\nCheck it")[0]  # nothing listed as off


def test_notes_with_components_off(helm: str, tmp_path: Path) -> None:
    text = cs.notes(helm, tmp_path, "--set", "router.enabled=false",
                    "--set", "autoscaler.enabled=false")
    on, off = text.split("\nOFF")
    assert "router:" not in on and "autoscaler:" not in on
    assert "--set router.enabled=true" in off and "--set autoscaler.enabled=true" in off

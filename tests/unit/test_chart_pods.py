"""The chart's pod-level values on every component (scheduling, pull secrets, pod labels
and annotations, resources), the PodDisruptionBudgets, the router's drain on rollout,
``global`` for use as a subchart, and the schema's messages for bad values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit import chart_support as cs

COMPONENTS = ("operator", "router", "autoscaler")
SELECTOR = {"app.kubernetes.io/instance": "tierserve"}
helm = pytest.fixture(scope="module")(cs.helm_binary)


def _set(component: str, key: str, value: str) -> list[str]:
    return ["--set-json", f"{component}.{key}={value}"]


SCHEDULING = [  # value key, JSON given, what the pod spec holds
    ("nodeSelector", '{"pool":"system"}', "nodeSelector", {"pool": "system"}),
    ("tolerations", '[{"key":"dedicated","operator":"Equal","value":"infra",'
     '"effect":"NoSchedule"}]', "tolerations",
     [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]),
    ("affinity", '{"nodeAffinity":{"x":1}}', "affinity", {"nodeAffinity": {"x": 1}}),
    ("priorityClassName", '"system-cluster-critical"', "priorityClassName",
     "system-cluster-critical"),
    ("resources", '{"requests":{"cpu":"2","memory":"1Gi"},"limits":{"memory":"3Gi"}}', None,
     {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}),
]


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize(("key", "given", "field", "expected"), SCHEDULING,
                         ids=[s[0] for s in SCHEDULING])
def test_scheduling_values_reach_the_pod_spec(helm: str, component: str, key: str,
                                              given: str, field: str | None,
                                              expected: Any) -> None:
    docs = cs.render(helm, *_set(component, key, given))
    spec = cs.pod_spec(docs, component)
    got = spec["containers"][0]["resources"] if field is None else spec[field]
    assert got == expected
    for other in set(COMPONENTS) - {component}:  # and only there
        assert field is None or field not in cs.pod_spec(docs, other)


@pytest.mark.parametrize("component", COMPONENTS)
def test_pod_labels_and_annotations_never_replace_the_charts_own(helm: str,
                                                                 component: str) -> None:
    docs = cs.render(helm, *_set(component, "podLabels",
                                 '{"team":"ml","app.kubernetes.io/component":"mine"}'),
                     *_set(component, "podAnnotations",
                           '{"a/b":"c","prometheus.io/port":"1"}'))
    dep = cs.find(docs, "Deployment", f"tierserve-{component}")
    meta = dep["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "ml"
    assert dep["spec"]["selector"]["matchLabels"].items() <= meta["labels"].items()
    assert meta["annotations"]["a/b"] == "c"
    if component == "router":  # its scrape annotation is the chart's, naming its port
        assert meta["annotations"]["prometheus.io/port"] == "8080"


@pytest.mark.parametrize("component", COMPONENTS)
def test_spread_constraints_default_to_the_components_pods(helm: str, component: str) -> None:
    zone = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway"}
    own = {**zone, "labelSelector": {"matchLabels": {"x": "y"}}}
    docs = cs.render(helm, *_set(component, "topologySpreadConstraints",
                                 json.dumps([zone, own])))
    first, second = cs.pod_spec(docs, component)["topologySpreadConstraints"]
    dep = cs.find(docs, "Deployment", f"tierserve-{component}")
    assert first == {**zone, "labelSelector": {"matchLabels": dep["spec"]["selector"][
        "matchLabels"]}}
    assert second == own


def test_image_pull_secrets_on_every_pod_global_first(helm: str) -> None:
    docs = cs.render(helm, "--set-json", 'global.imagePullSecrets=["shared",{"name":"team"}]',
                     "--set-json", 'imagePullSecrets=[{"name":"team"},"own"]')
    pods = [cs.pod_spec(docs, c) for c in COMPONENTS]
    hooks = [d["spec"] for d in cs.render(helm, "--set-json", 'imagePullSecrets=["own"]')
             if d["kind"] == "Pod"]
    assert len(hooks) == 2
    for spec in pods:
        assert spec["imagePullSecrets"] == [{"name": "shared"}, {"name": "team"},
                                            {"name": "own"}]
    for spec in hooks:
        assert spec["imagePullSecrets"] == [{"name": "own"}]
    assert "imagePullSecrets" not in cs.pod_spec(cs.render(helm), "operator")


def test_pod_disruption_budgets_for_operator_and_router(helm: str) -> None:
    docs = cs.render(helm)
    for component in ("operator", "router"):
        pdb = cs.find(docs, "PodDisruptionBudget", f"tierserve-{component}")
        dep = cs.find(docs, "Deployment", f"tierserve-{component}")
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert dep["spec"]["replicas"] == 2  # one may go, one stays
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"
                and d["metadata"]["name"] == "tierserve-autoscaler"]
    docs = cs.render(helm, "--set", "router.podDisruptionBudget.minAvailable=50%",
                     "--set", "operator.podDisruptionBudget.enabled=false")
    [pdb] = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["metadata"]["name"] == "tierserve-router"
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    docs = cs.render(helm, "--set", "router.enabled=false")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"] == [
        "tierserve-operator"]


def _router(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = cs.pod_spec(docs, "router")
    return spec, spec["containers"][0]


def test_router_outlasts_its_drain_window_on_rollout(helm: str) -> None:
    spec, container = _router(cs.render(helm))
    assert "--drain-s=120" in container["args"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert spec["terminationGracePeriodSeconds"] == 10 + 120 + 15
    spec, container = _router(cs.render(helm, "--set", "router.drainSeconds=600",
                                        "--set", "router.preStopSleepSeconds=0",
                                        "--set", "router.terminationGracePeriodSeconds=700"))
    assert "--drain-s=600" in container["args"] and "lifecycle" not in container
    assert spec["terminationGracePeriodSeconds"] == 700


def test_a_grace_period_shorter_than_the_drain_is_refused(helm: str) -> None:
    res = cs.run(helm, "--set", "router.terminationGracePeriodSeconds=100")
    assert res.returncode != 0
    assert ("router.terminationGracePeriodSeconds=100 leaves the drain no time: it must "
            "exceed router.preStopSleepSeconds + router.drainSeconds = 130") in res.stderr


def test_helm_test_hooks(helm: str) -> None:
    from tierserve.operator.settings import LeaderElection

    docs = cs.render(helm, "-n", "team-infra")
    hooks = [d for d in docs if (d["metadata"].get("annotations") or {}).get(
        "helm.sh/hook") == "test"]
    pods = {d["metadata"]["name"]: d["spec"] for d in hooks if d["kind"] == "Pod"}
    router, leader = pods["tierserve-test-router"], pods["tierserve-test-leader"]
    service = cs.find(docs, "Service", "tierserve-router")
    assert service["spec"]["ports"][0]["port"] == 80  # what the URL below reaches
    image = cs.pod_spec(docs, "operator")["containers"][0]["image"]
    assert router["containers"][0]["image"] == leader["containers"][0]["image"] == image
    assert router["containers"][0]["args"] == [
        "check", "router", "http://tierserve-router.team-infra.svc"]
    assert router["automountServiceAccountToken"] is False
    lease = LeaderElection().lease_name  # the operator's default, which the chart keeps
    assert leader["containers"][0]["args"] == [
        "check", "leader", "--in-cluster", "--namespace", "team-infra", "--lease", lease]
    role = next(d for d in hooks if d["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "resourceNames": [lease], "verbs": ["get"]}]
    assert leader["serviceAccountName"] == "tierserve-test"
    names = {d["metadata"]["name"] for d in cs.render(helm, "--set", "router.enabled=false")
             if d["kind"] == "Pod"}
    assert names == {"tierserve-test-leader"}
    assert not [d for d in cs.render(helm, "--set", "tests.enabled=false")
                if "tierserve-test" in d["metadata"]["name"]]


def test_works_as_a_subchart_with_globals(helm: str, tmp_path: Path) -> None:
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(cs.CHART, parent / "charts" / "tierserve")
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "platform", "version": "1.0.0",
        "dependencies": [{"name": "tierserve", "version": "0.1.0"}]}))
    (parent / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imagePullSecrets": ["mirror"], "region": "eu"},
        "tierserve": {"router": {"replicas": 3}}}))
    docs = cs.render(helm, chart=parent)
    assert cs.find(docs, "Deployment", "tierserve-router")["spec"]["replicas"] == 3
    assert cs.pod_spec(docs, "operator")["imagePullSecrets"] == [{"name": "mirror"}]


@pytest.mark.parametrize(("values", "where"), [
    ('router.tolerations=[{"key":"k","effect":"Sometimes"}]', "/router/tolerations/0/effect"),
    ('operator.topologySpreadConstraints=[{"maxSkew":1,"whenUnsatisfiable":"DoNotSchedule"}]',
     "missing property 'topologyKey'"),
    ('autoscaler.podLabels={"team":"a b"}', "/autoscaler/podLabels/team"),
    ('router.podDisruptionBudget={"maxUnavailable":"half"}',
     "/router/podDisruptionBudget/maxUnavailable"),
    ('router.drainSeconds=-1', "/router/drainSeconds"),
    ('imagePullSecrets=[{}]', "/imagePullSecrets/0"),
    ('operator.resources={"requests":{"cpu":"lots"}}', "/operator/resources/requests/cpu"),
    ('autoscaler.priorityClassName="Not_A_Name"', "/autoscaler/priorityClassName"),
    ('router.nodeSelector={"pool":3}', "/router/nodeSelector/pool"),
    ('operator.affinity={"nodeAfinity":{}}', "additional properties 'nodeAfinity' not allowed"),
])
def test_schema_rejects_bad_pod_values(helm: str, values: str, where: str) -> None:
    assert where in cs.rejected(helm, "--set-json", values)

"""What users see of the API through the real API server: ``kubectl explain`` text from
the pydantic descriptions (every field of both kinds), printer columns (wide ones only
with ``-o wide``), and the ``metav1.Condition`` schema enforced on status writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.test_crd_docs import _properties, _root

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster
API = "tierserve.io/v1alpha1"


def _deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "LLMDeployment", "metadata": {"name": name},
            "spec": {"model": {"name": "smollm2", "uri": "hf://org/model",
                               "parametersBillions": 0.135},
                     "runtime": "triton", "engine": "simulated",
                     "accelerator": {"type": "L4"},
                     "slo": {"ttftP95Ms": 500, "tpotP95Ms": 50}}}


def _explain(cluster: ClusterHandle, field: str) -> str:
    """``kubectl explain`` once the API server publishes the CRD's OpenAPI (a moment
    after the CRD is established)."""
    out: list[str] = []

    def published() -> bool:
        res = cluster.kubectl.run("explain", field, f"--api-version={API}", check=False)
        out[:] = [res.stdout]
        return res.returncode == 0

    wait_until(published, 60, f"kubectl explain {field}")
    return " ".join(out[0].split())


def test_explain_shows_the_descriptions(cluster: ClusterHandle, installed: Any) -> None:
    slo = _explain(cluster, "llmdeployments.spec.slo")
    assert "Latency targets that sizing and the autoscaler plan for" in slo
    assert "Time to first token, 95th percentile, in milliseconds" in slo
    assert "Default 0.99 (99%)" in slo
    reason = _explain(cluster, "llmroutes.status.conditions.reason")
    assert "one CamelCase word for programs" in reason
    deployment = _explain(cluster, "llmroutes.spec.variants.deployment")
    assert "Fixed once the variant exists" in deployment


def _published(cluster: ClusterHandle) -> dict[str, Any]:
    """The group's OpenAPI v3 document as the API server serves it to ``kubectl explain``
    (a moment after the CRDs are established)."""
    out: list[dict[str, Any]] = []

    def served() -> bool:
        res = cluster.kubectl.run("get", "--raw", f"/openapi/v3/apis/{API}", check=False)
        out[:] = [json.loads(res.stdout)] if res.returncode == 0 else []
        return bool(out)

    wait_until(served, 60, f"OpenAPI v3 of {API}")
    return out[0]


def _schema(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    schemas: dict[str, dict[str, Any]] = doc["components"]["schemas"]
    [schema] = [s for name, s in schemas.items()
                if name.endswith(f".{kind}") and "spec" in s.get("properties", {})]
    return schema


@pytest.mark.parametrize(("crd", "kind"), [("tierserve.io_llmdeployments.yaml", "LLMDeployment"),
                                           ("tierserve.io_llmroutes.yaml", "LLMRoute")])
def test_every_field_is_explained_by_the_api_server(
        cluster: ClusterHandle, installed: Any, crd: str, kind: str) -> None:
    """What ``kubectl explain`` reads: the published schema has every field of the
    generated CRD, each with the generated description (the unit test proves each has
    one; this proves the API server keeps and serves them all)."""
    served = dict(_properties(_schema(_published(cluster), kind)))
    # apiVersion, kind and metadata: the API server publishes its own text for them
    fields = [(p, s) for p, s in _properties(_root(crd)) if p.startswith((".spec", ".status"))]
    assert len(fields) > 60
    wrong = [p for p, s in fields
             if " ".join(str(served.get(p, {}).get("description", "")).split())
             != " ".join(str(s["description"]).split())]
    assert not wrong, f"{kind}: fields the API server explains differently or not at all: {wrong}"


def test_kubectl_explain_every_top_level_field(cluster: ClusterHandle, installed: Any) -> None:
    """``kubectl explain <kind>.spec.<field>`` prints the field's description, for every
    field of both specs; the first, as the README writes it (singular, no
    --api-version)."""
    first = cluster.kubectl.run("explain", "llmdeployment.spec.slo", check=False)
    assert first.returncode == 0, first.stderr
    assert "Latency targets that sizing and the autoscaler plan for" in first.stdout
    for crd, resource in (("tierserve.io_llmdeployments.yaml", "llmdeployment"),
                          ("tierserve.io_llmroutes.yaml", "llmroute")):
        spec = _root(crd)["properties"]["spec"]["properties"]
        for field, schema in spec.items():
            text = _explain(cluster, f"{resource}.spec.{field}")
            assert " ".join(str(schema["description"]).split())[:60] in text, field


def _table(cluster: ClusterHandle, kind: str, namespace: str,
           *extra: str) -> dict[str, dict[str, str]]:
    """``kubectl get`` as {name: {column: cell}}, cut at the header's column starts (an
    empty cell is blank, so splitting on spaces would shift the columns)."""
    head, *rows = cluster.kubectl("get", kind, "-n", namespace, *extra).splitlines()
    starts = [i for i, ch in enumerate(head) if ch != " " and (i == 0 or head[i - 1] == " ")]
    names = head.split()
    table = {}
    for row in rows:
        cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        table[cells[0]] = dict(zip(names, cells, strict=True))
    return table


def test_printer_columns(cluster: ClusterHandle, installed: Any, namespace: str) -> None:
    cluster.apply([_deployment("small"), {
        "apiVersion": API, "kind": "LLMRoute", "metadata": {"name": "ab"},
        "spec": {"model": "chat", "variants": [{"name": "a", "deployment": "small", "weight": 70},
                                               {"name": "b", "deployment": "big", "weight": 30}]}},
        {"apiVersion": API, "kind": "LLMRoute", "metadata": {"name": "tiered"},
         "spec": {"model": "think", "tiers": {"fast": "small", "slow": "big"}}}], namespace)
    small = _table(cluster, "llmd", namespace)["small"]
    assert list(small)[:3] == ["NAME", "MODEL", "ACCELERATOR"] and "RUNTIME" not in small
    assert (small["MODEL"], small["ACCELERATOR"]) == ("smollm2", "L4")
    wide = _table(cluster, "llmd", namespace, "-o", "wide")["small"]
    assert (wide["RUNTIME"], wide["ENGINE"], wide["ENDPOINT"]) == ("triton", "simulated", "")
    routes = _table(cluster, "llmr", namespace)
    assert list(routes["ab"])[:6] == ["NAME", "MODEL", "CONTROL", "CANDIDATE", "FAST", "SLOW"]
    pick = ("MODEL", "CONTROL", "CANDIDATE", "FAST", "SLOW")
    assert [routes["ab"][c] for c in pick] == ["chat", "small", "big", "", ""]
    assert [routes["tiered"][c] for c in pick] == ["think", "", "", "small", "big"]
    assert "ENDPOINT" not in routes["ab"]
    assert "ENDPOINT" in _table(cluster, "llmr", namespace, "-o", "wide")["ab"]


def _patch_condition(cluster: ClusterHandle, namespace: str,
                     condition: dict[str, Any]) -> tuple[int, str]:
    patch = json.dumps({"status": {"conditions": [condition]}})
    res = cluster.kubectl.run("patch", "llmd", "small", "-n", namespace, "--type=merge",
                              "--subresource=status", "-p", patch, check=False)
    return res.returncode, res.stderr


GOOD = {"type": "Ready", "status": "False", "reason": "RuntimeNotInstalled",
        "message": "", "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 1}


@pytest.mark.parametrize(("change", "expect"), [
    ({"reason": "Not Ready"}, "status.conditions[0].reason: Invalid value: \"Not Ready\": "
     "conditions[0].reason in body should match"),
    ({"reason": ""}, "conditions[0].reason in body should be at least 1 chars long"),
    ({"lastTransitionTime": "T0"},
     "status.conditions[0].lastTransitionTime: Invalid value: \"T0\": "
     "conditions[0].lastTransitionTime in body must be of type date-time"),
    ({"status": "Maybe"}, 'status.conditions[0].status: Unsupported value: "Maybe"'),
    ({"observedGeneration": -1}, "conditions[0].observedGeneration in body should be greater "
     "than or equal to 0"),
    ({"message": "x" * 32769}, "status.conditions[0].message: Too long"),
], ids=["reason-space", "reason-empty", "time", "status", "generation", "message"])
def test_status_conditions_follow_metav1_condition(
        cluster: ClusterHandle, installed: Any, namespace: str, change: dict[str, Any],
        expect: str) -> None:
    cluster.apply(_deployment("small"), namespace)
    assert _patch_condition(cluster, namespace, GOOD) == (0, "")
    code, err = _patch_condition(cluster, namespace, {**GOOD, **change})
    assert code != 0 and expect in err, err


def test_status_condition_requires_its_fields(
        cluster: ClusterHandle, installed: Any, namespace: str) -> None:
    cluster.apply(_deployment("small"), namespace)
    partial = {k: v for k, v in GOOD.items() if k not in ("lastTransitionTime", "reason")}
    code, err = _patch_condition(cluster, namespace, partial)
    assert code != 0
    assert "status.conditions[0].lastTransitionTime: Required value" in err
    assert "status.conditions[0].reason: Required value" in err

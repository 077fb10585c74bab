"""What ``kubectl explain`` and ``kubectl get`` show: a description on every CRD field,
conditions shaped as ``metav1.Condition``, printer columns, and the transition rules.

The walk covers every property of spec and status (nested objects, list items and map
values), so a field added to the pydantic types without a description fails here with
its path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml

from tierserve.core.api.crd import all_crds
from tierserve.core.api.deployment import Condition

Schema = dict[str, Any]
CRDS = all_crds()
# metav1.Condition's reason pattern (k8s.io/apimachinery/pkg/apis/meta/v1/types.go)
UPSTREAM_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def _root(name: str) -> Schema:
    schema: Schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _properties(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every named property below ``node``, with its dotted path (``[]`` for list items,
    ``{}`` for map values)."""
    for key, child in (node.get("properties") or {}).items():
        yield f"{path}.{key}", child
        yield from _properties(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _properties(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _properties(node["additionalProperties"], f"{path}{{}}")


# the API server refuses a CRD whose metadata schema says anything but its type; kubectl
# explain shows ObjectMeta's own text there
UNDESCRIBED = {".metadata"}


@pytest.mark.parametrize("name", list(CRDS))
def test_every_field_has_a_description(name: str) -> None:
    missing = [p for p, s in _properties(_root(name))
               if not str(s.get("description", "")).strip() and p not in UNDESCRIBED]
    assert not missing, f"{name}: fields without a description: {missing}"


def test_walk_sees_nested_list_and_map_fields() -> None:
    paths = dict(_properties(_root("tierserve.io_llmdeployments.yaml")))
    for path in (".spec.secrets.env[].secretKeyRef.key", ".status.conditions[].reason",
                 ".spec.scheduling.tolerations[].effect", ".status.sizing.estTpotMs"):
        assert path in paths
    assert len(paths) > 100  # the issue counted ~110 fields


def test_descriptions_carry_units_and_defaults() -> None:
    spec = _root("tierserve.io_llmdeployments.yaml")["properties"]["spec"]["properties"]
    ttft = spec["slo"]["properties"]["ttftP95Ms"]["description"]
    assert "milliseconds" in ttft and "e.g." in ttft
    attainment = spec["slo"]["properties"]["targetAttainment"]["description"]
    assert "0.99" in attainment
    down = spec["autoscaling"]["properties"]["scaleDownStabilizationSeconds"]["description"]
    assert "seconds" in down and "300" in down


@pytest.mark.parametrize("name", list(CRDS))
def test_conditions_follow_metav1_condition(name: str) -> None:
    status = _root(name)["properties"]["status"]["properties"]
    cond = status["conditions"]["items"]
    props = cond["properties"]
    assert set(cond["required"]) == {"type", "status", "lastTransitionTime", "reason",
                                     "message"}
    assert props["status"]["enum"] == ["True", "False", "Unknown"]
    assert props["lastTransitionTime"]["type"] == "string"
    assert props["lastTransitionTime"]["format"] == "date-time"
    assert props["reason"]["pattern"] == UPSTREAM_REASON
    assert props["reason"]["maxLength"] == 1024 and props["reason"]["minLength"] == 1
    assert props["message"]["maxLength"] == 32768
    assert props["observedGeneration"]["format"] == "int64"
    assert props["observedGeneration"]["minimum"] == 0
    assert props["type"]["maxLength"] == 316
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize(("reason", "accepted"), [
    ("RuntimeNotInstalled", True), ("Ends_", True), ("A", True), ("Reason:Sub,Part", True),
    ("", False), ("Not Ready", False), ("9Lives", False), ("Ends,", False),
    ("Not-Ready", False)])
def test_condition_reason_is_checked_as_the_api_server_does(reason: str, accepted: bool) -> None:
    body = {"type": "Ready", "status": "False", "reason": reason, "message": "",
            "lastTransitionTime": "2026-01-02T03:04:05Z"}
    assert (re.fullmatch(UPSTREAM_REASON.strip("^$"), reason) is not None) == accepted
    if accepted:
        assert Condition.model_validate(body).reason == reason
    else:
        with pytest.raises(ValueError, match="reason"):
            Condition.model_validate(body)


# kube-openapi's date-time (strfmt): RFC 3339 with a "T", seconds, and a zone
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def test_operator_clocks_write_the_date_time_format() -> None:
    from tierserve.operator import reconciler, routes

    for clock in (reconciler._now, routes.now):
        stamp = clock()
        assert _DATE_TIME.fullmatch(stamp), stamp
        datetime.fromisoformat(stamp)  # a real date and time


def test_condition_requires_a_transition_time() -> None:
    with pytest.raises(ValueError, match="lastTransitionTime"):
        Condition.model_validate({"type": "Ready", "status": "True", "reason": "Ok",
                                  "message": ""})


def test_condition_message_is_cut_to_the_api_server_limit() -> None:
    cond = Condition(type="Ready", status="False", reason="InvalidSpec", message="x" * 40_000,
                     last_transition_time="2026-01-02T03:04:05Z")
    assert len(cond.message) == 32768 and cond.message.endswith("...")


def _columns(name: str) -> dict[str, dict[str, Any]]:
    cols = CRDS[name]["spec"]["versions"][0]["additionalPrinterColumns"]
    return {c["name"]: c for c in cols}


def test_deployment_columns_model_first_secondary_in_wide() -> None:
    cols = _columns("tierserve.io_llmdeployments.yaml")
    shown = [n for n, c in cols.items() if c.get("priority", 0) == 0]
    wide = [n for n, c in cols.items() if c.get("priority", 0) == 1]
    assert shown == ["Model", "Accelerator", "Replicas", "SLO", "Ready", "Age"]
    assert wide == ["Runtime", "Engine", "Endpoint"]
    assert cols["Model"]["jsonPath"] == ".spec.model.name"
    assert all(c.get("description") for c in cols.values())


def test_route_columns_show_variants_for_ab_and_tiers_for_tiered() -> None:
    cols = _columns("tierserve.io_llmroutes.yaml")
    shown = [n for n, c in cols.items() if c.get("priority", 0) == 0]
    assert shown == ["Model", "Control", "Candidate", "Fast", "Slow", "Ready", "Age"]
    # one column per variant: the API server prints only a path's first match
    assert cols["Control"]["jsonPath"] == ".spec.variants[0].deployment"
    assert cols["Candidate"]["jsonPath"] == ".spec.variants[1].deployment"
    assert cols["Fast"]["jsonPath"] == ".spec.tiers.fast"
    assert cols["Endpoint"]["priority"] == 1
    assert all(c.get("description") for c in cols.values())


def _rules(node: Schema, path: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    for rule in node.get("x-kubernetes-validations") or []:
        yield path, rule
    for key, child in (node.get("properties") or {}).items():
        yield from _rules(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _rules(node["items"], f"{path}[]")


def test_variant_deployment_is_immutable_with_a_message() -> None:
    rules = [(p, r) for p, r in _rules(_root("tierserve.io_llmroutes.yaml"))
             if "oldSelf" in r["rule"]]
    assert [p for p, _ in rules] == [".spec.variants[].deployment"]
    _, rule = rules[0]
    assert rule["rule"] == "self == oldSelf"
    assert "add a variant with a new name" in rule["message"]


def test_every_transition_rule_has_an_e2e_case() -> None:
    from tests.data.badcases import load_bad_transitions

    expected = " ".join(case.expect for case in load_bad_transitions())
    messages = [r["message"] for name in CRDS for _, r in _rules(_root(name))
                if "oldSelf" in r["rule"]]
    assert messages and all(m in expected for m in messages)


def test_generated_yaml_keeps_the_descriptions() -> None:
    text = yaml.safe_dump(CRDS["tierserve.io_llmroutes.yaml"])
    assert "The model name clients ask for" in text

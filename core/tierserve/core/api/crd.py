"""Generate the CustomResourceDefinitions from the pydantic types.

The pydantic models are the single definition of the API. This module turns their JSON
schema into a Kubernetes *structural* OpenAPI v3 schema: references inlined, nullable
unions collapsed, titles dropped, ``const`` turned into a one-value enum, numeric
``exclusiveMinimum`` turned into OpenAPI 3.0's boolean form. Cross-field rules arrive as
``x-kubernetes-validations`` (see :mod:`tierserve.core.api.base`).

``tierserve crds --out crds/`` writes the YAML; a unit test fails when the committed
files differ from what this module generates.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from tierserve.core.api.deployment import GROUP, VERSION, LLMDeploymentSpec, LLMDeploymentStatus
from tierserve.core.api.route import LLMRouteSpec, LLMRouteStatus

Schema = dict[str, Any]


def _inline(node: Any, defs: Schema) -> Any:
    """Resolve ``$ref`` recursively and normalise each schema node."""
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    return _normalise({k: _inline(v, defs) for k, v in node.items() if k != "$defs"}, defs)


def _normalise(node: Schema, defs: Schema) -> Schema:
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**branches[0], **rest}
    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
        node["exclusiveMinimum"], bool
    ):
        node["minimum"] = node["exclusiveMinimum"]
        node["exclusiveMinimum"] = True
    if isinstance(node.get("additionalProperties"), bool):
        # Structural schemas forbid `additionalProperties: false`; pruning already drops
        # unknown fields and strict field validation reports them at apply time.
        del node["additionalProperties"]
    return {k: v for k, v in node.items() if k != "title"}


def structural_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: Schema = _inline(raw, raw.get("$defs", {}))
    return result


def _list_map(schema: Schema, field: str, key: str) -> None:
    """Mark a list as a map keyed by ``key`` (server-side apply merges, uniqueness)."""
    target = schema["properties"][field]
    target["x-kubernetes-list-type"] = "map"
    target["x-kubernetes-list-map-keys"] = [key]


def _root(spec: Schema, status: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _crd(kind: str, plural: str, short: list[str], root: Schema,
         columns: list[dict[str, str]], subresources: Schema) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/part-of": "tierserve"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), "shortNames": short,
                      "categories": ["llm", "tierserve"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": subresources,
                "additionalPrinterColumns": columns,
            }],
        },
    }


_READY = '.status.conditions[?(@.type=="Ready")].status'
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def deployment_crd() -> Schema:
    status = structural_schema(LLMDeploymentStatus)
    _list_map(status, "conditions", "type")
    columns = [
        {"name": "Runtime", "type": "string", "jsonPath": ".spec.runtime"},
        {"name": "Accelerator", "type": "string", "jsonPath": ".spec.accelerator.type"},
        {"name": "Replicas", "type": "string", "jsonPath": ".status.replicasSummary",
         "description": "ready/desired replicas"},
        {"name": "SLO", "type": "string", "jsonPath": ".status.sloSummary",
         "description": "TTFT/TPOT p95 targets and observed attainment"},
        {"name": "Ready", "type": "string", "jsonPath": _READY},
        _AGE,
    ]
    scale = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
             "labelSelectorPath": ".status.selector"}
    return _crd("LLMDeployment", "llmdeployments", ["llmd"],
                _root(structural_schema(LLMDeploymentSpec), status), columns,
                {"status": {}, "scale": scale})


def route_crd() -> Schema:
    spec = structural_schema(LLMRouteSpec)
    _list_map(spec, "variants", "name")
    status = structural_schema(LLMRouteStatus)
    _list_map(status, "conditions", "type")
    columns = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "Fast", "type": "string", "jsonPath": ".spec.tiers.fast"},
        {"name": "Slow", "type": "string", "jsonPath": ".spec.tiers.slow"},
        {"name": "Ready", "type": "string", "jsonPath": _READY},
        _AGE,
    ]
    return _crd("LLMRoute", "llmroutes", ["llmr"], _root(spec, status), columns,
                {"status": {}})


def all_crds() -> dict[str, Schema]:
    """File name -> CRD object, in the order they should be applied."""
    return {
        "tierserve.io_llmdeployments.yaml": deployment_crd(),
        "tierserve.io_llmroutes.yaml": route_crd(),
    }


def to_yaml(obj: Schema) -> str:
    header = "# Generated by `tierserve crds --out crds`; do not edit.\n"
    return header + yaml.safe_dump(obj, sort_keys=False, width=100)

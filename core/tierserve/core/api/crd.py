"""Generate the CustomResourceDefinitions from the pydantic types.

The pydantic models are the single definition of the API. This module turns their JSON
schema into a Kubernetes *structural* OpenAPI v3 schema: references inlined, nullable
unions collapsed, titles dropped, ``const`` turned into a one-value enum, numeric
``exclusiveMinimum`` turned into OpenAPI 3.0's boolean form. Cross-field rules arrive as
``x-kubernetes-validations`` (see :mod:`tierserve.core.api.base`). Every field's
description (``kubectl explain``) comes from its pydantic ``Field`` or its type's
docstring; a unit test fails on a field without one.

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
    if isinstance(node.get("description"), str):
        # class docstrings become descriptions: one line, no reStructuredText literals
        node["description"] = " ".join(node["description"].replace("``", "").split())
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


# the API server's own texts for the fields every object has; metadata takes nothing but
# its type (the API server refuses a CRD that says more, and explains ObjectMeta itself)
_API_VERSION = ("APIVersion defines the versioned schema of this representation of an "
                "object: tierserve.io/v1alpha1.")
_KIND = "Kind is a string value representing the REST resource this object represents."


_DESCRIPTIONS = {
    "LLMDeployment": "One model served on one accelerator type (a GPU, or CPU cores) to one "
    "set of latency SLOs, by KubeRay's Ray Serve or by Triton Inference Server; the "
    "operator sizes the replicas and the autoscaler scales them to the SLOs.",
    "LLMRoute": "The model name clients ask for (OpenAI API) and how its requests are "
    "split: weighted variants (an A/B test) or a fast and a slow tier.",
}


def _root(kind: str, spec: Schema, status: Schema) -> Schema:
    """The object's schema; ``spec`` and ``status`` keep their types' own descriptions."""
    return {
        "type": "object",
        "description": _DESCRIPTIONS[kind],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION},
            "kind": {"type": "string", "description": f"{_KIND} Here: {kind}."},
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


_READY = {"name": "Ready", "type": "string",
          "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
          "description": "status of the Ready condition"}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": "time since creation"}


def _column(name: str, path: str, description: str, wide: bool = False) -> dict[str, Any]:
    """A printer column; ``wide`` ones show only with ``kubectl get -o wide``."""
    col: dict[str, Any] = {"name": name, "type": "string", "jsonPath": path,
                           "description": description}
    if wide:
        col["priority"] = 1
    return col


def deployment_crd() -> Schema:
    status = structural_schema(LLMDeploymentStatus)
    _list_map(status, "conditions", "type")
    columns = [
        _column("Model", ".spec.model.name", "model name clients ask for"),
        _column("Runtime", ".spec.runtime", "rayServe or triton", wide=True),
        _column("Engine", ".spec.engine", "what serves the model", wide=True),
        _column("Accelerator", ".spec.accelerator.type", "accelerator type of a replica"),
        _column("Replicas", ".status.replicasSummary", "ready/desired replicas"),
        _column("SLO", ".status.sloSummary", "TTFT/TPOT p95 targets and observed attainment"),
        _READY,
        _column("Endpoint", ".status.endpoint", "in-cluster URL of the runtime's Service",
                wide=True),
        _AGE,
    ]
    scale = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
             "labelSelectorPath": ".status.selector"}
    return _crd("LLMDeployment", "llmdeployments", ["llmd"],
                _root("LLMDeployment", structural_schema(LLMDeploymentSpec), status), columns,
                {"status": {}, "scale": scale})


def route_crd() -> Schema:
    spec = structural_schema(LLMRouteSpec)
    _list_map(spec, "variants", "name")
    status = structural_schema(LLMRouteStatus)
    _list_map(status, "conditions", "type")
    # An A/B route fills Control and Candidate, a tiered one Fast and Slow. The API server
    # prints only the first match of a column's path ("[*]" shows one variant), so each
    # shown variant has its own column: the first two, the control and the one the
    # readout compares with it (kubectl get -o yaml lists more).
    columns = [
        _column("Model", ".spec.model", "model name clients ask for"),
        _column("Control", ".spec.variants[0].deployment",
                "A/B: the first variant's deployment (the readout's control)"),
        _column("Candidate", ".spec.variants[1].deployment",
                "A/B: the second variant's deployment"),
        _column("Fast", ".spec.tiers.fast", "tiered: the fast deployment"),
        _column("Slow", ".spec.tiers.slow", "tiered: the slow deployment"),
        _READY,
        _column("Endpoint", ".status.endpoint", "how clients reach the route", wide=True),
        _AGE,
    ]
    return _crd("LLMRoute", "llmroutes", ["llmr"], _root("LLMRoute", spec, status), columns,
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

"""Pure builders: RayService and Triton children, checked with Ray's and Triton's own schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from ray.serve.schema import ServeDeploySchema
from tritonclient.grpc import model_config_pb2

from modelplane.builders import BuildSettings, build_children
from modelplane.builders.common import Images
from modelplane.builders.context import from_object

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _deployments() -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "LLMDeployment":
                doc["metadata"]["uid"] = f"uid-{doc['metadata']['name']}"
                out[doc["metadata"]["name"]] = doc
    return out


DEPLOYMENTS = _deployments()


def children(name: str, **spec_changes: Any) -> list[dict[str, Any]]:
    doc = copy.deepcopy(DEPLOYMENTS[name])
    doc["spec"].update(spec_changes)
    return build_children(from_object(doc, BuildSettings()))


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_every_child_is_owned_labelled_and_deterministic(name: str) -> None:
    first, second = children(name), children(name)
    assert first == second
    for child in first:
        meta = child["metadata"]
        ref = meta["ownerReferences"][0]
        assert ref == {"apiVersion": "modelplane.io/v1alpha1", "kind": "LLMDeployment",
                       "name": name, "uid": f"uid-{name}", "controller": True,
                       "blockOwnerDeletion": True}
        assert meta["labels"]["modelplane.io/deployment"] == name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelplane"
        assert meta["namespace"] == "default"


@pytest.mark.parametrize("name", [n for n, d in DEPLOYMENTS.items()
                                  if d["spec"]["runtime"] == "rayServe"])
def test_serve_config_validates_with_ray_schema(name: str) -> None:
    (svc,) = children(name)
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.parse_obj(config)
    assert schema.applications[0].route_prefix == "/"
    workers = svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert workers["replicas"] == DEPLOYMENTS[name]["spec"]["replicas"]
    pod = workers["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    limits = pod["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1


def test_vllm_serve_config_carries_sizing() -> None:
    (svc,) = children("slow-70b")
    app = yaml.safe_load(svc["spec"]["serveConfigV2"])["applications"][0]
    assert app["import_path"] == "ray.serve.llm:build_openai_app"
    llm = app["args"]["llm_configs"][0]
    assert llm["engine_kwargs"]["tensor_parallel_size"] == 4
    assert llm["accelerator_type"] == "H100"
    assert llm["deployment_config"] == {"num_replicas": 1}


def test_replicas_propagate_to_children() -> None:
    (svc,) = children("llama-8b-ray", replicas=3)
    app = yaml.safe_load(svc["spec"]["serveConfigV2"])["applications"][0]
    assert app["args"]["llm_configs"][0]["deployment_config"]["num_replicas"] == 3
    assert svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] == 3
    dep = next(c for c in children("llama-8b-triton", replicas=2) if c["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 2


@pytest.mark.parametrize("name", [n for n, d in DEPLOYMENTS.items()
                                  if d["spec"]["runtime"] == "triton"])
def test_triton_config_parses_with_triton_protobuf(name: str) -> None:
    cm, dep, svc = children(name)
    cfg = text_format.Parse(cm["data"]["config.pbtxt"], model_config_pb2.ModelConfig())
    assert cfg.model_transaction_policy.decoupled is True
    assert cfg.backend in ("vllm", "python", "tensorrtllm")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {p["name"] for p in svc["spec"]["ports"]} == {"http", "grpc", "metrics"}
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-L4"}
    assert dep["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()


def test_secret_is_referenced_never_inlined() -> None:
    (svc,) = children("llama-8b-ray")
    env = svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"][
        "containers"][0]["env"]
    assert {"name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}} in env


def test_scheduling_passthrough_and_label_override() -> None:
    doc = copy.deepcopy(DEPLOYMENTS["llama-8b-triton"])
    doc["spec"]["scheduling"] = {"nodeSelector": {"pool": "inference"},
                                 "tolerations": [{"key": "dedicated", "operator": "Exists"}]}
    settings = BuildSettings(node_label_overrides={"L4": {"gpu": "l4"}},
                             images=Images(triton_vllm="registry.local/triton:1"))
    dep = build_children(from_object(doc, settings))[1]
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "l4", "pool": "inference"}
    assert {"key": "dedicated", "operator": "Exists"} in pod["tolerations"]
    assert pod["containers"][0]["image"] == "registry.local/triton:1"

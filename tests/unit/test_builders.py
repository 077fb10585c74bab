"""Pure builders: RayService and Triton children, checked with Ray's and Triton's own schemas."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from ray.serve.schema import ServeDeploySchema
from tritonclient.grpc import model_config_pb2

from tierserve.core.builders import BuildSettings, build_children
from tierserve.core.builders.common import Images
from tierserve.core.builders.context import from_object

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
        assert ref == {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
                       "name": name, "uid": f"uid-{name}", "controller": True,
                       "blockOwnerDeletion": True}
        assert meta["labels"]["tierserve.io/deployment"] == name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "tierserve"
        assert meta["namespace"] == "default"


@pytest.mark.parametrize("name", [n for n, d in DEPLOYMENTS.items()
                                  if d["spec"]["runtime"] == "rayServe"])
def test_serve_config_validates_with_ray_schema(name: str) -> None:
    (svc,) = children(name)
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.model_validate(config)
    assert schema.applications[0].route_prefix == "/"
    workers = svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert workers["replicas"] == DEPLOYMENTS[name]["spec"]["replicas"]
    pod = workers["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    if DEPLOYMENTS[name]["spec"]["accelerator"]["type"] == "cpu":
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
        assert "nvidia.com/gpu" not in limits
    else:
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
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
    cpu = DEPLOYMENTS[name]["spec"]["accelerator"]["type"] == "cpu"
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == (
        {"kubernetes.io/arch": "amd64"} if cpu else {"nvidia.com/gpu.product": "NVIDIA-L4"})
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


# --- what Prometheus finds: the labels the autoscaler selects on, one engine target each


def _scrape_target(template: dict[str, Any]) -> tuple[int, str] | None:
    """(port, path) the chart's PodMonitor scrapes on a pod from this template, or None."""
    ann = template.get("metadata", {}).get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true":
        return None
    ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
    port = int(ann["prometheus.io/port"])
    assert port in ports  # keepequal on the declared container port: one target
    return port, ann["prometheus.io/path"]


def _owned(template: dict[str, Any], name: str) -> None:
    labels = template["metadata"]["labels"]
    assert labels["tierserve.io/deployment"] == name
    assert labels["app.kubernetes.io/managed-by"] == "tierserve"
    assert "app.kubernetes.io/name" not in labels or labels["app.kubernetes.io/name"] \
        == "tierserve-llm"


def test_rayservice_simulated_head_is_the_one_engine_scrape_target() -> None:
    (svc,) = children("llama-8b-ray", engine="simulated", replicas=3)
    cluster = svc["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["template"]
    [workers] = cluster["workerGroupSpecs"]
    _owned(head, "llama-8b-ray")
    _owned(workers["template"], "llama-8b-ray")
    # KubeRay keeps its own app.kubernetes.io/name on Ray pods
    assert "app.kubernetes.io/name" not in head["metadata"]["labels"]
    assert head["metadata"]["labels"]["app.kubernetes.io/component"] == "ray-head"
    assert workers["template"]["metadata"]["labels"]["app.kubernetes.io/component"] \
        == "ray-worker"
    # the ingress serves /metrics under the app's route prefix on the Serve HTTP port
    app = yaml.safe_load(svc["spec"]["serveConfigV2"])["applications"][0]
    assert app["route_prefix"] == "/"
    assert _scrape_target(head) == (8000, "/metrics")
    # workers have no ingress: owned but never an engine target (no double count)
    assert _scrape_target(workers["template"]) is None
    # the Serve port keeps the name KubeRay's serve Service looks for; `metrics` is left
    # to KubeRay (Ray's own export port, 8080) on every Ray container
    ports = head["spec"]["containers"][0]["ports"]
    assert {"name": "serve", "containerPort": 8000} in ports
    for tpl in (head, workers["template"]):
        assert not [p for p in tpl["spec"]["containers"][0].get("ports", [])
                    if p["name"] == "metrics"]
    # unique (containerPort, protocol): the CRD's list-map key for server-side apply
    assert len({p["containerPort"] for p in ports}) == len(ports)


def test_rayservice_vllm_is_owned_but_not_an_engine_target() -> None:
    # Ray Serve LLM exports vLLM's stats through Ray (ray_vllm_*), not vllm:* at /metrics
    (svc,) = children("llama-8b-ray")
    cluster = svc["spec"]["rayClusterConfig"]
    _owned(cluster["headGroupSpec"]["template"], "llama-8b-ray")
    assert _scrape_target(cluster["headGroupSpec"]["template"]) is None
    assert _scrape_target(cluster["workerGroupSpecs"][0]["template"]) is None


@pytest.mark.parametrize("engine", ["vllm", "simulated"])
def test_triton_pod_is_scraped_on_its_metrics_port(engine: str) -> None:
    _cm, dep, _svc = children("llama-8b-triton", engine=engine)
    template = dep["spec"]["template"]
    _owned(template, "llama-8b-triton")
    assert _scrape_target(template) == (8002, "/metrics")
    ports = template["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 8002} in ports


def test_triton_vllm_reports_custom_metrics() -> None:
    cm, _dep, _svc = children("llama-8b-triton")
    cfg = text_format.Parse(cm["data"]["config.pbtxt"], model_config_pb2.ModelConfig())
    assert cfg.backend == "vllm"
    assert cfg.parameters["REPORT_CUSTOM_METRICS"].string_value == "true"
    assert json.loads(cm["data"]["model.json"])["disable_log_stats"] is False
    cm, _dep, _svc = children("llama-8b-triton", engine="simulated")
    cfg = text_format.Parse(cm["data"]["config.pbtxt"], model_config_pb2.ModelConfig())
    assert "REPORT_CUSTOM_METRICS" not in cfg.parameters

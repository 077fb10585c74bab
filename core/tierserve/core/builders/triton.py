"""``runtime: triton`` -> ConfigMap (model repository), Deployment and Service.

The ConfigMap carries the model repository: ``config.pbtxt`` for the model (decoupled,
so tokens stream) and, per engine, the backend's own file (``model.json`` for vLLM).
:func:`model_config` is also what the local target writes, so a local Triton server and
a cluster one load the same configuration.
"""

from __future__ import annotations

import json

from tierserve.core.builders.common import (
    BuildContext,
    Manifest,
    env,
    gpu_resources,
    metadata,
    model_path,
    node_selector,
    scrape_annotations,
    selector_labels,
    tolerations,
    triton_model_name,
)

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
MODEL_ROOT = "/models"

# TensorRT-LLM's tensor names, so clients and the router's Triton adapter speak one
# protocol to every Triton LLM model; prompt/output token counts are optional hints.
_TEXT_IO = """input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
  { name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true },
  { name: "prompt_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
  { name: "output_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }
]
output [
  { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "completion_tokens" data_type: TYPE_INT32 dims: [ 1 ] },
  { name: "prompt_tokens" data_type: TYPE_INT32 dims: [ 1 ] }
]
"""


def _backend(engine: str) -> str:
    return {"vllm": "vllm", "tensorrtllm": "tensorrtllm"}.get(engine, "python")


def model_config(name: str, engine: str, parameters: dict[str, str] | None = None,
                 instance_count: int = 1, instance_kind: str = "KIND_MODEL") -> str:
    """``config.pbtxt`` text for a decoupled (streaming) LLM model.

    Shared by the cluster builder and the local target (``tierserve.engine.triton``).
    """
    lines = [
        f'name: "{name}"',
        f'backend: "{_backend(engine)}"',
        "max_batch_size: 0",
        "model_transaction_policy { decoupled: true }",
        f"instance_group [ {{ count: {instance_count} kind: {instance_kind} }} ]",
    ]
    if engine != "vllm":  # the vLLM backend declares its own inputs and outputs
        lines.append(_TEXT_IO.rstrip())
    for key, value in sorted((parameters or {}).items()):
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def _parameters(ctx: BuildContext) -> dict[str, str]:
    if ctx.spec.engine == "simulated":
        return {"profile": ctx.spec.engine_profile or "llama-3.1-8b-h100",
                "served_name": ctx.spec.model.name}
    if ctx.spec.engine == "tensorrtllm":
        return {"gpt_model_path": model_path(ctx), "decoupled_mode": "true",
                "batching_strategy": "inflight_fused_batching",
                "max_num_sequences": str(ctx.plan.max_batch_per_replica)}
    if ctx.spec.engine == "vllm":
        # the vLLM backend reports vllm:* on Triton's metrics port only with this
        # (and disable_log_stats false in model.json)
        return {"REPORT_CUSTOM_METRICS": "true"}
    return {}


def _vllm_model_json(ctx: BuildContext) -> str:
    spec = ctx.spec
    cfg: dict[str, object] = {
        "model": model_path(ctx),
        "tensor_parallel_size": ctx.plan.gpus_per_replica,
        "max_model_len": spec.model.max_context_length,
        "max_num_seqs": ctx.plan.max_batch_per_replica,
        "gpu_memory_utilization": 0.9,
        "disable_log_stats": False,  # engine stats feed REPORT_CUSTOM_METRICS
    }
    if spec.model.revision:
        cfg["revision"] = spec.model.revision
    if spec.model.quantization:
        cfg["quantization"] = spec.model.quantization
    return json.dumps(cfg, sort_keys=True)


def _configmap(ctx: BuildContext) -> Manifest:
    model = triton_model_name(ctx.spec.model.name)
    data = {"config.pbtxt": model_config(model, ctx.spec.engine, _parameters(ctx))}
    if ctx.spec.engine == "vllm":
        data["model.json"] = _vllm_model_json(ctx)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(ctx, f"{ctx.name}-model-repo", "model-repository"),
            "data": data}


def _image(ctx: BuildContext) -> str:
    images = ctx.settings.images
    return {"vllm": images.triton_vllm, "tensorrtllm": images.triton_tensorrtllm,
            "simulated": images.simulated}.get(ctx.spec.engine, images.triton_python)


def _probe(path: str, period: int) -> Manifest:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "failureThreshold": 3}


def _container(ctx: BuildContext) -> Manifest:
    model = triton_model_name(ctx.spec.model.name)
    items = [f"--model-repository={MODEL_ROOT}", f"--http-port={HTTP_PORT}",
             f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}",
             "--model-control-mode=explicit", f"--load-model={model}"]
    return {
        "name": "triton",
        "image": _image(ctx),
        "command": ["tritonserver"],
        "args": items + list(ctx.spec.args),
        "env": env(ctx),
        "ports": [{"name": "http", "containerPort": HTTP_PORT},
                  {"name": "grpc", "containerPort": GRPC_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "readinessProbe": _probe("/v2/health/ready", 5),
        "livenessProbe": _probe("/v2/health/live", 10),
        "startupProbe": {**_probe("/v2/health/live", 10), "failureThreshold": 60},
        "resources": gpu_resources(ctx, "4", "16Gi"),
        "volumeMounts": [{"name": "model-repo", "mountPath": f"{MODEL_ROOT}/{model}"}],
    }


def _deployment(ctx: BuildContext) -> Manifest:
    pod_spec: Manifest = {
        "nodeSelector": node_selector(ctx),
        "tolerations": tolerations(ctx),
        "containers": [_container(ctx)],
        "volumes": [{"name": "model-repo",
                     "configMap": {"name": f"{ctx.name}-model-repo",
                                   "items": _volume_items(ctx)}}],
    }
    if ctx.spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = ctx.spec.scheduling.priority_class_name
    meta = metadata(ctx, ctx.name, "model-server")
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": ctx.replicas,
            "selector": {"matchLabels": selector_labels(ctx)},
            "template": {"metadata": {"labels": meta["labels"],
                                      "annotations": scrape_annotations(METRICS_PORT,
                                                                        "/metrics")},
                         "spec": pod_spec},
        },
    }


def _volume_items(ctx: BuildContext) -> list[Manifest]:
    items = [{"key": "config.pbtxt", "path": "config.pbtxt"}]
    if ctx.spec.engine == "vllm":
        items.append({"key": "model.json", "path": "1/model.json"})
    return items


def _service(ctx: BuildContext) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(ctx, ctx.name, "model-server"),
        "spec": {
            "selector": selector_labels(ctx),
            "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"}
                      for n, p in (("http", HTTP_PORT), ("grpc", GRPC_PORT),
                                   ("metrics", METRICS_PORT))],
        },
    }


def build(ctx: BuildContext) -> list[Manifest]:
    return [_configmap(ctx), _deployment(ctx), _service(ctx)]

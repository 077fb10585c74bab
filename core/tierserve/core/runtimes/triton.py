"""``runtime: triton``: ConfigMap (model repository), Deployment and Service.

The ConfigMap carries the model directory's files (:mod:`.triton_repository`), mounted
at ``/models/<model>``; the server loads that one model (explicit model control). Pods
are ready when Triton's ``/v2/health/ready`` answers, so the Deployment's ready replicas
are the deployment's. The router speaks Triton's ``generate`` protocol to the Service's
``http`` port, naming the model directory; Triton serves metrics on its own port.

``engine: llamacpp`` runs Tierserve's Python-backend model on CPU cores: the pod gets the
storage initializer (:mod:`tierserve.core.builders.storage`) that puts the GGUF file into
``/mnt/models``, requests ``threadsPerReplica`` cores and no GPU, and selects nodes by
architecture (the image is x86-64) instead of GPU product.
"""

from __future__ import annotations

from typing import Final

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.builders.common import (
    BuildContext,
    Manifest,
    env,
    metadata,
    node_selector,
    replica_resources,
    scrape_annotations,
    selector_labels,
    tolerations,
)
from tierserve.core.builders.storage import model_store
from tierserve.core.runtimes.base import (
    MetricsEndpoint,
    ObservedChildren,
    Readiness,
    RequiredCrd,
    RouterEndpoint,
    replica_readiness,
)
from tierserve.core.runtimes.triton_repository import MODEL_ROOT, model_files, triton_model_name

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
CPU_BASE_MEMORY_MIB = 1024  # tritonserver, the Python backend stub and llama.cpp buffers
METRICS: Final = MetricsEndpoint(METRICS_PORT, "/metrics")


def _config_key(path: str) -> str:
    """ConfigMap keys are flat: a file's key is its name (unique within a model dir)."""
    return path.rsplit("/", 1)[-1]


def _configmap(ctx: BuildContext) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(ctx, f"{ctx.name}-model-repo", "model-repository"),
            "data": {_config_key(p): text for p, text in model_files(ctx).items()}}


def _volume_items(ctx: BuildContext) -> list[Manifest]:
    return [{"key": _config_key(p), "path": p} for p in model_files(ctx)]


def _image(ctx: BuildContext) -> str:
    images = ctx.settings.images
    return {"vllm": images.triton_vllm, "tensorrtllm": images.triton_tensorrtllm,
            "simulated": images.simulated, "llamacpp": images.llamacpp,
            }.get(ctx.spec.engine, images.triton_python)


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
        "resources": replica_resources(ctx, "4", "16Gi", CPU_BASE_MEMORY_MIB),
        "volumeMounts": [{"name": "model-repo", "mountPath": f"{MODEL_ROOT}/{model}"},
                         *model_store(ctx).mounts],
    }


def _deployment(ctx: BuildContext) -> Manifest:
    store = model_store(ctx)
    pod_spec: Manifest = {
        "nodeSelector": node_selector(ctx),
        "tolerations": tolerations(ctx),
        "containers": [_container(ctx)],
        "volumes": [{"name": "model-repo",
                     "configMap": {"name": f"{ctx.name}-model-repo",
                                   "items": _volume_items(ctx)}}, *store.volumes],
    }
    if store.init_containers:
        pod_spec["initContainers"] = store.init_containers
    if ctx.spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = ctx.spec.scheduling.priority_class_name
    meta = metadata(ctx, ctx.name, "model-server")
    annotations = scrape_annotations(METRICS.port, METRICS.path)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": ctx.replicas,
            "selector": {"matchLabels": selector_labels(ctx)},
            "template": {"metadata": {"labels": meta["labels"], "annotations": annotations},
                         "spec": pod_spec},
        },
    }


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


def children(ctx: BuildContext) -> list[Manifest]:
    return [_configmap(ctx), _deployment(ctx), _service(ctx)]


def readiness(ctx: BuildContext, observed: ObservedChildren) -> Readiness:
    """The Deployment's replicas; a pod is ready when Triton's readiness probe passes."""
    st = observed.status("Deployment", ctx.name)
    return replica_readiness(ctx.replicas, int(st.get("replicas") or 0),
                             int(st.get("readyReplicas") or 0))


class Triton:
    """The :class:`~tierserve.core.runtimes.base.Runtime` for ``runtime: triton``."""

    name = "triton"
    protocol: Final = "triton"
    local_runner = "triton"
    requires: tuple[RequiredCrd, ...] = ()  # Deployment, Service, ConfigMap: built in

    def children(self, ctx: BuildContext) -> list[Manifest]:
        return children(ctx)

    def readiness(self, ctx: BuildContext, observed: ObservedChildren) -> Readiness:
        return readiness(ctx, observed)

    def router_endpoint(self, name: str, spec: LLMDeploymentSpec) -> RouterEndpoint:
        return RouterEndpoint(service=name, port_name="http", port=HTTP_PORT,
                              protocol=self.protocol,
                              upstream_model=triton_model_name(spec.model.name))

    def metrics(self, spec: LLMDeploymentSpec) -> MetricsEndpoint | None:
        return METRICS

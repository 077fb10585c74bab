"""``runtime: rayServe``: a KubeRay ``RayService`` (ray.io/v1) serving OpenAI's API.

The serve config is a Ray Serve deploy config (``applications: [...]``) serialised into
``spec.serveConfigV2``. Real engines use Ray Serve LLM (``ray.serve.llm:build_openai_app``
with vLLM); ``engine: simulated`` uses Tierserve's own Ray Serve application.
Replicas come from the LLMDeployment (its scale subresource): Ray Serve's own autoscaler
is off so that exactly one controller decides the replica count.

Metrics: labels on the RayService object do not reach its pods, so the head and worker
pod templates carry the ownership labels themselves. With ``engine: simulated`` the
single ``OpenAIIngress`` replica serves the ``vllm:*`` metrics (aggregated over all
engine replicas) at ``<route prefix>/metrics`` on the Serve HTTP port of the head pod:
only the head pod gets the ``prometheus.io/*`` scrape annotations, so a deployment is one
scrape target. KubeRay reserves the container port name ``metrics`` for Ray's own
metrics export port (8080, added to every Ray pod) and serves the Serve Service from the
port named ``serve``, so the engine metrics port is given by the ``prometheus.io/port``
annotation, not by a port name. Real vLLM on Ray Serve reports through Ray's metrics
export under other names (``ray_vllm_*``): not annotated (docs/autoscaler.md).

``engine: llamacpp`` runs Tierserve's own Serve application (the simulated engine's, with
``engine: llamacpp``): each Serve replica loads the GGUF file once and streams tokens;
the ingress serves ``vllm:*`` at ``/metrics`` as for the simulated engine. Each worker pod
is one replica's CPU slice (``threadsPerReplica`` cores, no GPU, an x86-64 node), with the
storage initializer (:mod:`tierserve.core.builders.storage`) putting the model file into
``/mnt/models``; the head advertises no CPUs to Ray, so replicas land on workers only.

Readiness: the RayService's own ``Ready`` condition (or ``serviceStatus: Running``) and
the worker replicas KubeRay reports. The router reaches the replicas through the
``<name>-serve-svc`` Service KubeRay creates, port ``serve``.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.builders.common import (
    BuildContext,
    Manifest,
    env,
    metadata,
    model_path,
    node_selector,
    pod_labels,
    replica_resources,
    scrape_annotations,
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

SERVE_PORT = 8000
KUBERAY_VERSION = "1.4.2"  # the KubeRay release whose CRDs the builders target (ray.io/v1)
KUBERAY: Final = RequiredCrd(
    name="rayservices.ray.io", api_version="ray.io/v1", kind="RayService",
    install=("install KubeRay's operator and CRDs with its Helm chart: helm repo add kuberay "
             "https://ray-project.github.io/kuberay-helm/ && helm install kuberay-operator "
             f"kuberay/kuberay-operator --version {KUBERAY_VERSION}"))
APP_NAME = "llm"
ROUTE_PREFIX = "/"
TIERSERVE_IMPORT_PATH = "tierserve.engine.serve_app:build_app"  # simulated and llamacpp
SIMULATED_IMPORT_PATH = TIERSERVE_IMPORT_PATH
VLLM_IMPORT_PATH = "ray.serve.llm:build_openai_app"
# Engines Tierserve serves itself: its ingress exports vllm:* at /metrics.
TIERSERVE_ENGINES = ("simulated", "llamacpp")
CPU_BASE_MEMORY_MIB = 2048  # raylet, the Serve replica process and llama.cpp buffers

# catalog name -> Ray's accelerator_type resource name
RAY_ACCELERATOR = {
    "H200": "H200", "H100-SXM": "H100", "H100-PCIe": "H100", "A100-80GB": "A100-80G",
    "A100-40GB": "A100-40G", "L40S": "L40S", "L4": "L4", "A10G": "A10G", "T4": "T4",
    "MI300X": "AMD-Instinct-MI300X-OAM",
}


def _llm_config(ctx: BuildContext) -> dict[str, Any]:
    spec = ctx.spec
    loading = {"model_id": spec.model.name, "model_source": model_path(ctx)}
    engine_kwargs: dict[str, Any] = {
        "tensor_parallel_size": ctx.plan.gpus_per_replica,
        "max_model_len": spec.model.max_context_length,
        "max_num_seqs": ctx.plan.max_batch_per_replica,
    }
    if spec.model.revision:
        engine_kwargs["revision"] = spec.model.revision
    if spec.model.quantization:
        engine_kwargs["quantization"] = spec.model.quantization
    elif spec.model.dtype in ("bfloat16", "float16", "float32"):
        engine_kwargs["dtype"] = spec.model.dtype
    return {
        "model_loading_config": loading,
        "accelerator_type": RAY_ACCELERATOR[ctx.accelerator.name],
        "deployment_config": {"num_replicas": spec.replicas},
        "engine_kwargs": engine_kwargs,
    }


def _llamacpp_args(ctx: BuildContext) -> dict[str, Any]:
    spec = ctx.spec
    args: dict[str, Any] = {"engine": "llamacpp", "model": model_store(ctx).model_path,
                            "served_name": spec.model.name, "num_replicas": spec.replicas,
                            "threads": ctx.plan.threads_per_replica or 1,
                            "context": spec.model.max_context_length}
    if spec.model.chat_template is not None:
        args["chat_template"] = spec.model.chat_template
    if spec.model.stop:
        args["stop"] = list(spec.model.stop)
    return args


def serve_config(ctx: BuildContext) -> dict[str, Any]:
    """The Ray Serve deploy config (validated in tests by Ray's ServeDeploySchema)."""
    if ctx.spec.engine == "llamacpp":
        app: dict[str, Any] = {"name": APP_NAME, "route_prefix": ROUTE_PREFIX,
                               "import_path": TIERSERVE_IMPORT_PATH,
                               "args": _llamacpp_args(ctx)}
    elif ctx.spec.engine == "simulated":
        app = {
            "name": APP_NAME,
            "route_prefix": ROUTE_PREFIX,
            "import_path": SIMULATED_IMPORT_PATH,
            "args": {"profile": ctx.spec.engine_profile or "llama-3.1-8b-h100",
                     "served_name": ctx.spec.model.name,
                     "num_replicas": ctx.spec.replicas},
        }
    else:
        app = {
            "name": APP_NAME,
            "route_prefix": ROUTE_PREFIX,
            "import_path": VLLM_IMPORT_PATH,
            "args": {"llm_configs": [_llm_config(ctx)]},
        }
    return {"http_options": {"host": "0.0.0.0", "port": SERVE_PORT}, "applications": [app]}


def metrics_path() -> str:
    """Where the simulated app's ingress serves ``/metrics``: under the route prefix."""
    return ROUTE_PREFIX.rstrip("/") + "/metrics"


def metrics(spec: LLMDeploymentSpec) -> MetricsEndpoint | None:
    """Tierserve's own apps serve ``vllm:*`` themselves (on the head's Serve port)."""
    return (MetricsEndpoint(SERVE_PORT, metrics_path(), per_pod=False)
            if spec.engine in TIERSERVE_ENGINES else None)


def _image(ctx: BuildContext) -> str:
    images = ctx.settings.images
    return {"simulated": images.simulated, "llamacpp": images.llamacpp}.get(
        ctx.spec.engine, images.ray_vllm)


def _container(ctx: BuildContext, name: str, resources: Manifest,
               mounts: list[Manifest] | None = None) -> Manifest:
    container: Manifest = {
        "name": name,
        "image": _image(ctx),
        "env": env(ctx),
        "args": list(ctx.spec.args),
        "resources": resources,
    }
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _head(ctx: BuildContext) -> Manifest:
    cpu = ctx.accelerator.is_cpu
    size = ("1", "2Gi") if cpu else ("2", "8Gi")
    resources = {"requests": {"cpu": size[0], "memory": size[1]}, "limits": {"memory": size[1]}}
    container = _container(ctx, "ray-head", resources)
    container["ports"] = [
        {"name": "gcs", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "serve", "containerPort": SERVE_PORT},
    ]
    template_meta: Manifest = {"labels": pod_labels(ctx, "ray-head")}
    if (scraped := metrics(ctx.spec)) is not None:
        template_meta["annotations"] = scrape_annotations(scraped.port, scraped.path)
    params = {"dashboard-host": "0.0.0.0", "num-gpus": "0"}
    if cpu:  # engine replicas go to the workers, one per worker pod
        params["num-cpus"] = "0"
    return {
        "rayStartParams": params,
        "template": {"metadata": template_meta, "spec": {"containers": [container]}},
    }


def _workers(ctx: BuildContext) -> list[Manifest]:
    store, cpu = model_store(ctx), ctx.accelerator.is_cpu
    resources = replica_resources(ctx, "8", "32Gi", CPU_BASE_MEMORY_MIB)
    pod_spec: Manifest = {
        "nodeSelector": node_selector(ctx),
        "tolerations": tolerations(ctx),
        "containers": [_container(ctx, "ray-worker", resources, store.mounts)],
    }
    if store.init_containers:
        pod_spec["initContainers"] = store.init_containers
    if store.volumes:
        pod_spec["volumes"] = store.volumes
    if ctx.spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = ctx.spec.scheduling.priority_class_name
    return [{
        "groupName": "cpu-workers" if cpu else "gpu-workers",
        "replicas": ctx.replicas,
        "minReplicas": 0,
        "maxReplicas": max(ctx.spec.max_replicas, ctx.replicas),
        "rayStartParams": {"num-cpus": str(ctx.plan.threads_per_replica)} if cpu else {},
        # owned, but no scrape annotations: workers have no ingress (no engine metrics)
        "template": {"metadata": {"labels": pod_labels(ctx, "ray-worker")}, "spec": pod_spec},
    }]


def children(ctx: BuildContext) -> list[Manifest]:
    return [{
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata(ctx, ctx.name, "rayservice"),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(ctx), sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": ctx.settings.images.ray_version,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": _head(ctx),
                "workerGroupSpecs": _workers(ctx),
            },
        },
    }]


def _worker_pods(observed: ObservedChildren) -> list[Manifest]:
    return [p for p in observed.pods
            if (p.get("metadata", {}).get("labels") or {}).get("ray.io/node-type") == "worker"]


def readiness(ctx: BuildContext, observed: ObservedChildren) -> Readiness:
    """Worker replicas from KubeRay's cluster status (else the worker pods), and the
    RayService's own readiness: Serve may still deploy the app on running workers."""
    st = observed.status("RayService", ctx.name)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in st.get("conditions") or []) or st.get("serviceStatus") == "Running"
    cluster = (st.get("activeServiceStatus") or {}).get("rayClusterStatus") or {}
    workers = _worker_pods(observed)
    running = sum(1 for p in workers if (p.get("status") or {}).get("phase") == "Running")
    return replica_readiness(
        ctx.replicas,
        int(cluster.get("desiredWorkerReplicas") or len(workers)),
        int(cluster.get("readyWorkerReplicas") or (running if ready else 0)),
        waiting_for=None if ready else "the RayService to report Ready")


class RayServe:
    """The :class:`~tierserve.core.runtimes.base.Runtime` for ``runtime: rayServe``."""

    name = "rayServe"
    protocol: Final = "openai"
    local_runner = "rayServe"
    requires: tuple[RequiredCrd, ...] = (KUBERAY,)  # its child kind comes from KubeRay

    def children(self, ctx: BuildContext) -> list[Manifest]:
        return children(ctx)

    def readiness(self, ctx: BuildContext, observed: ObservedChildren) -> Readiness:
        return readiness(ctx, observed)

    def router_endpoint(self, name: str, spec: LLMDeploymentSpec) -> RouterEndpoint:
        # KubeRay's Serve Service: ``<name>-serve-svc``, port ``serve``
        return RouterEndpoint(service=f"{name}-serve-svc", port_name="serve", port=SERVE_PORT,
                              protocol=self.protocol, upstream_model=spec.model.name)

    def metrics(self, spec: LLMDeploymentSpec) -> MetricsEndpoint | None:
        return metrics(spec)

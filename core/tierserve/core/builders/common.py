"""What every child manifest shares: names, labels, owner references, settings.

Builders are pure: :class:`BuildContext` in, plain manifest dicts out. They never call
the Kubernetes API and never read the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from tierserve.core.api.deployment import API_VERSION, LLMDeploymentSpec, SizingPlan
from tierserve.core.catalog import CATALOG, Accelerator, get

Manifest = dict[str, Any]
DEPLOYMENT_LABEL = "tierserve.io/deployment"
MANAGED_BY = "tierserve"


# camelCase in files and the chart's values (``engines`` there is this object), snake_case
# in Python; both spellings validate
_SETTINGS_CONFIG = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)


def _known_types(value: dict[str, Any], what: str) -> dict[str, Any]:
    unknown = sorted(set(value) - set(CATALOG))
    if unknown:
        raise ValueError(f"{what}: unknown accelerator type(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(CATALOG)}")
    return value


class Images(BaseModel):
    """Container images per runtime/engine (chart values ``engines.images``)."""

    model_config = _SETTINGS_CONFIG

    ray_vllm: str = "rayproject/ray-llm:2.49.0-py311-cu128"
    ray_version: str = "2.49.0"
    triton_vllm: str = "nvcr.io/nvidia/tritonserver:25.01-vllm-python-py3"
    triton_tensorrtllm: str = "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3"
    triton_python: str = "nvcr.io/nvidia/tritonserver:25.01-py3"
    simulated: str = "ghcr.io/tierserve/tierserve:0.1.0"
    # built from images/engine-llamacpp/Dockerfile and images/storage-initializer/Dockerfile
    llamacpp: str = "ghcr.io/tierserve/engine-llamacpp:0.1.0"
    storage_initializer: str = "ghcr.io/tierserve/storage-initializer:0.1.0"


class BuildSettings(BaseModel):
    """Operator-wide settings the builders read: the chart's ``engines`` values, which the
    chart hands the operator as a file (``tierserve operator --build-settings``)."""

    model_config = _SETTINGS_CONFIG

    images: Images = Field(default_factory=Images)
    node_label_overrides: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="accelerator type -> node labels that select it, replacing the catalog's",
    )
    gpu_prices: dict[str, float] = Field(
        default_factory=dict,
        description="accelerator type -> USD per unit-hour (GPU-hour; core-hour for cpu), "
                    "replacing the catalog's price in cost estimates",
    )
    gpu_toleration: bool = Field(default=True,
                                 description="tolerate the usual `<vendor>/gpu` NoSchedule taint")

    @field_validator("node_label_overrides")
    @classmethod
    def _labels_of_known_types(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return _known_types(v, "nodeLabelOverrides")

    @field_validator("gpu_prices")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: p for k, p in v.items() if not p > 0}
        if bad:
            raise ValueError(f"gpuPrices: prices must be above 0, got {bad}")
        return _known_types(v, "gpuPrices")

    def price_per_hour_usd(self, accelerator: str) -> float:
        """The price cost estimates use for one unit of ``accelerator`` for an hour."""
        return self.gpu_prices.get(accelerator, get(accelerator).cost_per_hour_usd)

    @classmethod
    def from_yaml(cls, text: str, source: str = "build settings") -> BuildSettings:
        """Parse a YAML/JSON document (pure: the caller reads the file); a clear error
        naming ``source`` and the bad value otherwise."""
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: not YAML: {exc}") from exc
        if doc is not None and not isinstance(doc, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(doc).__name__}")
        try:
            return cls.model_validate(doc or {})
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc


@dataclass(frozen=True)
class BuildContext:
    name: str
    namespace: str
    uid: str
    spec: LLMDeploymentSpec
    plan: SizingPlan
    accelerator: Accelerator
    settings: BuildSettings = field(default_factory=BuildSettings)
    generation: int = 0  # of the LLMDeployment; with uid, the key of the desired state

    @property
    def replicas(self) -> int:
        return self.spec.replicas


def labels(ctx: BuildContext, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tierserve-llm",
        "app.kubernetes.io/instance": ctx.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "tierserve",
        DEPLOYMENT_LABEL: ctx.name,
    }


def selector_labels(ctx: BuildContext) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: ctx.name, "app.kubernetes.io/managed-by": MANAGED_BY}


def pod_labels(ctx: BuildContext, component: str) -> dict[str, str]:
    """Labels for pods another controller creates from our template (KubeRay).

    :func:`labels` less ``app.kubernetes.io/name``, which KubeRay sets on its pods.
    """
    return {k: v for k, v in labels(ctx, component).items() if k != "app.kubernetes.io/name"}


def scrape_annotations(port: int, path: str) -> dict[str, str]:
    """Where the pod serves its engine metrics (``vllm:*``); the chart's PodMonitor and the
    plain scrape job in docs/autoscaler.md keep only pods with ``scrape: "true"`` and
    scrape exactly this container port and path (one target per pod)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": path}


def metadata(ctx: BuildContext, name: str, component: str) -> Manifest:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": labels(ctx, component),
        "ownerReferences": [{
            "apiVersion": API_VERSION,
            "kind": "LLMDeployment",
            "name": ctx.name,
            "uid": ctx.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }],
    }


def node_selector(ctx: BuildContext) -> dict[str, str]:
    override = ctx.settings.node_label_overrides.get(ctx.accelerator.name)
    return {**ctx.accelerator.node_selector(override), **ctx.spec.scheduling.node_selector}


def tolerations(ctx: BuildContext) -> list[Manifest]:
    base: list[Manifest] = []
    if ctx.settings.gpu_toleration and not ctx.accelerator.is_cpu:
        base.append({"key": ctx.accelerator.resource_name, "operator": "Exists",
                     "effect": "NoSchedule"})
    return base + [t.wire() for t in ctx.spec.scheduling.tolerations]


def env(ctx: BuildContext) -> list[Manifest]:
    """Plain env plus secret references; secret *values* never pass through the operator."""
    out: list[Manifest] = [{"name": e.name, "value": e.value} for e in ctx.spec.env]
    secrets = ctx.spec.secrets
    if secrets.hf_token is not None:
        ref = secrets.hf_token.secret_key_ref
        out.append({"name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    for s in secrets.env:
        ref = s.secret_key_ref
        out.append({"name": s.name,
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return out


def gpu_resources(ctx: BuildContext, cpu: str, memory: str) -> Manifest:
    gpus = str(ctx.plan.gpus_per_replica)
    extra = ctx.spec.resources
    requests = {"cpu": cpu, "memory": memory, ctx.accelerator.resource_name: gpus,
                **{k: str(v) for k, v in extra.requests.items()}}
    limits = {ctx.accelerator.resource_name: gpus, **{k: str(v) for k, v in extra.limits.items()}}
    return {"requests": requests, "limits": limits}


def cpu_resources(ctx: BuildContext, base_memory_mib: int) -> Manifest:
    """A CPU replica: ``threadsPerReplica`` whole cores, requests equal to limits (the
    Guaranteed class, which the kubelet's static CPU manager pins to cores), and memory
    for the weights, one ``maxContextLength`` KV cache and ``base_memory_mib``."""
    plan, model = ctx.plan, ctx.spec.model
    need = plan.weights_gib * 1024 + model.max_context_length * plan.kv_bytes_per_token / 2**20
    memory = f"{math.ceil(need) + base_memory_mib}Mi"
    cores = str(plan.threads_per_replica or 1)
    extra = ctx.spec.resources
    requests = {"cpu": cores, "memory": memory, **{k: str(v) for k, v in extra.requests.items()}}
    limits = {"cpu": cores, "memory": memory, **{k: str(v) for k, v in extra.limits.items()}}
    return {"requests": requests, "limits": limits}


def replica_resources(ctx: BuildContext, cpu: str, memory: str, base_memory_mib: int) -> Manifest:
    """An engine replica's resources: GPUs (with ``cpu``/``memory`` for the host side) or,
    for accelerator type cpu, :func:`cpu_resources`."""
    if ctx.accelerator.is_cpu:
        return cpu_resources(ctx, base_memory_mib)
    return gpu_resources(ctx, cpu, memory)


def model_path(ctx: BuildContext) -> str:
    """What the engine loads: the hub id for hf://, else the URI as given."""
    uri = ctx.spec.model.uri
    return uri.removeprefix("hf://") if uri.startswith("hf://") else uri

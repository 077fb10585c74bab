"""Simulated nodes: GPU machines of several catalog types plus CPU-only machines.

Nodes are plain ``v1/Node`` objects that kwok manages (annotation
``kwok.x-k8s.io/node: fake``, label ``type: kwok``); kwok keeps them Ready and moves
pods bound to them to Running. Labels follow what real clusters carry: NVIDIA GPU
feature discovery (``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``), GKE
(``cloud.google.com/gke-accelerator``), AMD's node labeller, and well-known
``node.kubernetes.io/instance-type`` / zone labels. GPU nodes are tainted
``<resource>=present:NoSchedule`` like GKE's GPU pools; the API server's
``ExtendedResourceToleration`` admission plugin gives pods that request the GPU resource
the matching toleration, so CPU-only pods stay off GPU machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierserve.core.catalog import get

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
PODS_PER_NODE = 110


@dataclass(frozen=True)
class NodePool:
    """``count`` identical machines; ``accelerator`` is a catalog name or None for CPU."""

    prefix: str
    count: int
    instance_type: str
    cpu: int
    memory_gi: int
    accelerator: str | None = None
    gpus: int = 0
    zone: str = "us-central1-a"


def default_pools(cpu_nodes: int = 2) -> tuple[NodePool, ...]:
    """The standard layout: 2x 8xH100, 2x 4xL4, 1x 8xA100-80GB, ``cpu_nodes`` CPU nodes."""
    return (
        NodePool("gpu-h100", 2, "a3-highgpu-8g", 208, 1872, "H100-SXM", 8),
        NodePool("gpu-l4", 2, "g2-standard-48", 48, 192, "L4", 4, "us-central1-b"),
        NodePool("gpu-a100", 1, "a2-ultragpu-8g", 96, 1360, "A100-80GB", 8),
        NodePool("cpu", cpu_nodes, "n2-standard-16", 16, 64),
    )


def _gpu_labels(pool: NodePool) -> dict[str, str]:
    if pool.accelerator is None:
        return {}
    acc = get(pool.accelerator)
    key, value = acc.product_label
    labels = {key: value, "tierserve.io/accelerator": acc.name}
    if acc.vendor == "nvidia":
        labels |= {"nvidia.com/gpu.count": str(pool.gpus), "nvidia.com/gpu.present": "true",
                   "nvidia.com/gpu.memory": str(int(acc.memory_gb * 1024))}
    if acc.gke_label:
        labels["cloud.google.com/gke-accelerator"] = acc.gke_label
    return labels


def _labels(pool: NodePool, name: str) -> dict[str, str]:
    region = pool.zone.rsplit("-", 1)[0]
    return {
        "type": "kwok",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": pool.instance_type,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": pool.zone,
        **_gpu_labels(pool),
    }


def _resources(pool: NodePool) -> dict[str, str]:
    resources = {"cpu": str(pool.cpu), "memory": f"{pool.memory_gi}Gi",
                 "pods": str(PODS_PER_NODE), "ephemeral-storage": "500Gi"}
    if pool.accelerator is not None:
        resources[get(pool.accelerator).resource_name] = str(pool.gpus)
    return resources


def _taints(pool: NodePool) -> list[dict[str, str]]:
    if pool.accelerator is None:
        return []
    resource = get(pool.accelerator).resource_name
    return [{"key": resource, "value": "present", "effect": "NoSchedule"}]


def node_manifest(pool: NodePool, index: int) -> dict[str, Any]:
    name = f"{pool.prefix}-{index}"
    resources = _resources(pool)
    spec: dict[str, Any] = {"taints": _taints(pool)} if pool.accelerator else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": _labels(pool, name),
                     "annotations": {KWOK_ANNOTATION: "fake",
                                     "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": spec,
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }


def manifests(pools: tuple[NodePool, ...]) -> list[dict[str, Any]]:
    return [node_manifest(pool, i) for pool in pools for i in range(pool.count)]

"""The GPU catalog: what each accelerator offers and how a cluster labels it.

Figures are dense (no sparsity) tensor throughput and memory figures from the vendors'
datasheets:

* H200: NVIDIA H200 Tensor Core GPU datasheet (SXM): 141 GB HBM3e, 4.8 TB/s, BF16 989 TFLOPS.
* H100 SXM / PCIe: NVIDIA H100 Tensor Core GPU datasheet: SXM 80 GB HBM3, 3.35 TB/s,
  BF16 989 TFLOPS; PCIe 80 GB HBM2e, 2.0 TB/s, BF16 756 TFLOPS.
* A100 80GB / 40GB: NVIDIA A100 Tensor Core GPU datasheet (SXM4): 2,039 GB/s and
  1,555 GB/s, BF16 312 TFLOPS.
* L40S: NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, BF16 362 TFLOPS.
* L4: NVIDIA L4 Tensor Core GPU datasheet: 24 GB GDDR6, 300 GB/s, BF16 121 TFLOPS.
* A10G: AWS's variant of the A10; NVIDIA A10 datasheet: 24 GB GDDR6, 600 GB/s, BF16 125 TFLOPS.
* T4: NVIDIA T4 datasheet: 16 GB GDDR6, 320 GB/s, FP16 65 TFLOPS (no BF16).
* MI300X: AMD Instinct MI300X data sheet: 192 GB HBM3, 5.3 TB/s, BF16 1,307 TFLOPS.
* cpu: one core of a 2-vCPU cloud VM slice on AMD EPYC 7003 "Milan" (the machine
  Tierserve's CPU figures were measured on; AWS m6a.large runs the same EPYC 7R13). Figures
  are *per core*, because threads per replica play the part tensor parallelism plays for
  GPUs: two 256-bit FMA units per Zen 3 core (AMD; Microway's "Detailed Specifications of
  the AMD EPYC Milan CPUs"), 32 FP32 FLOPs per cycle at this machine's 2.45 GHz = 78.4
  GFLOPS; memory: eight DDR4-3200 channels, 204.8 GB/s per socket (AMD EPYC 7003 series
  data sheet), of which one core of an otherwise idle slice streams 14.8 GB/s (measured
  here, single-thread read of 256 MB with numpy; the 64-core socket's fair share would be
  3.2 GB/s); 4 GiB of memory per vCPU (m6a.large: 2 vCPUs, 8 GiB). Price: AWS EC2
  on-demand, us-east-1, Linux, m6a.large $0.0864 per hour
  (https://aws.amazon.com/ec2/pricing/on-demand/) = $0.0432 per vCPU-hour, memory
  included. The efficiencies are fitted to llama.cpp on this machine (docs/sizing.md):
  prefill 4.9 ms and decode 14 ms per token for SmolLM2-135M with one thread.

Node labels: ``nvidia.com/gpu.product`` is set by NVIDIA GPU feature discovery,
``cloud.google.com/gke-accelerator`` by GKE, ``amd.com/gpu.product-name`` by AMD's node
labeller. Operators can override the selecting label per type (see :class:`LabelOverride`).

``cost_per_hour_usd`` is an indicative on-demand price per GPU-hour (per core-hour for
``cpu``) used only for cost estimates (sizing plan, router savings); platform teams
override it in the chart values.

A replica gets ``1 .. max_units`` units of an accelerator: GPUs (tensor parallelism) or,
for ``kind == "cpu"``, cores (engine threads). The efficiencies say how much of the peak
figures an engine reaches; the GPU defaults are vLLM's (docs/sizing.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
AMD_PRODUCT_LABEL = "amd.com/gpu.product-name"
ARCH_LABEL = "kubernetes.io/arch"  # the llama.cpp image is built for x86-64 (AVX2)
CPU = "cpu"


@dataclass(frozen=True)
class Accelerator:
    """One accelerator type. Throughput in dense TFLOPS, bandwidth in GB/s, memory in GB,
    all per unit (one GPU, or one core for ``kind == "cpu"``)."""

    name: str
    vendor: str
    resource_name: str
    memory_gb: float
    bandwidth_gbps: float
    bf16_tflops: float
    product_label: tuple[str, str]
    gke_label: str | None
    cost_per_hour_usd: float
    supports_bf16: bool = True
    kind: Literal["gpu", "cpu"] = "gpu"
    max_units: int = 8  # GPUs (tensor-parallel degree) or cores (threads) per replica
    prefill_efficiency: float = 0.5  # share of dense throughput prefill reaches
    decode_compute_efficiency: float = 0.5  # ... that a compute-bound decode step reaches
    bandwidth_efficiency: float = 0.8  # share of peak bandwidth a decode step streams at
    runtime_overhead_gb: float = 2.0  # per unit: CUDA context, activations (CPU: buffers)
    allreduce_ms_per_layer: float = 0.015  # tensor-parallel all-reduce (0: shared memory)

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    def node_selector(self, override: Mapping[str, str] | None = None) -> dict[str, str]:
        """Labels that select nodes with this accelerator (override wins when given)."""
        if override:
            return dict(override)
        key, value = self.product_label
        return {key: value}


def _nv(name: str, mem: float, bw: float, tf: float, product: str, gke: str | None,
        cost: float, bf16: bool = True) -> Accelerator:
    return Accelerator(name, "nvidia", "nvidia.com/gpu", mem, bw, tf,
                       (GFD_PRODUCT_LABEL, product), gke, cost, bf16)


CATALOG: Mapping[str, Accelerator] = {
    a.name: a
    for a in (
        _nv("H200", 141, 4800, 989, "NVIDIA-H200", "nvidia-h200-141gb", 10.6),
        _nv("H100-SXM", 80, 3350, 989, "NVIDIA-H100-80GB-HBM3", "nvidia-h100-80gb", 6.98),
        _nv("H100-PCIe", 80, 2000, 756, "NVIDIA-H100-PCIe", None, 4.76),
        _nv("A100-80GB", 80, 2039, 312, "NVIDIA-A100-SXM4-80GB", "nvidia-a100-80gb", 5.07),
        _nv("A100-40GB", 40, 1555, 312, "NVIDIA-A100-SXM4-40GB", "nvidia-tesla-a100", 3.67),
        _nv("L40S", 48, 864, 362, "NVIDIA-L40S", None, 1.86),
        _nv("L4", 24, 300, 121, "NVIDIA-L4", "nvidia-l4", 0.81),
        _nv("A10G", 24, 600, 125, "NVIDIA-A10G", None, 1.21),
        _nv("T4", 16, 320, 65, "Tesla-T4", "nvidia-tesla-t4", 0.53, bf16=False),
        Accelerator("MI300X", "amd", "amd.com/gpu", 192, 5300, 1307,
                    (AMD_PRODUCT_LABEL, "AMD_Instinct_MI300X_OAM"), None, 6.0),
        Accelerator(CPU, "amd", "cpu", memory_gb=4.29, bandwidth_gbps=14.8,
                    bf16_tflops=0.0784, product_label=(ARCH_LABEL, "amd64"), gke_label=None,
                    cost_per_hour_usd=0.0432, kind="cpu", max_units=2,
                    prefill_efficiency=0.70, decode_compute_efficiency=0.255,
                    bandwidth_efficiency=0.8, runtime_overhead_gb=0.25,
                    allreduce_ms_per_layer=0.0),
    )
}

ACCELERATOR_TYPES: tuple[str, ...] = tuple(CATALOG)


class UnknownAccelerator(KeyError):
    """Raised for a type not in the catalog; the message lists the known ones."""

    def __str__(self) -> str:
        return f"unknown accelerator type {self.args[0]!r}; known: {', '.join(ACCELERATOR_TYPES)}"


def get(name: str) -> Accelerator:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownAccelerator(name) from None

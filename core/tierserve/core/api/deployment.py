"""``LLMDeployment``: one model, one accelerator type (a GPU, or CPU cores), one set of SLOs.

The spec is what a model owner writes; the status is what the operator and the
autoscaler report back (sizing plan, replicas, conditions, observed SLO attainment).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from tierserve.core.api.base import ApiModel, Rule

# the status types live in their own modules; re-exported here, where the rest of the
# code base imports them from
from tierserve.core.api.conditions import Condition as Condition
from tierserve.core.api.conditions import StatusModel as StatusModel
from tierserve.core.api.deployment_status import LLMDeploymentStatus as LLMDeploymentStatus
from tierserve.core.api.deployment_status import SizingPlan as SizingPlan
from tierserve.core.api.deployment_status import SLOStatus as SLOStatus
from tierserve.core.api.model import GGUF_QUANTIZATIONS, ModelSource
from tierserve.core.api.pod import EnvVar, Resources, Scheduling, Secrets
from tierserve.core.catalog import ACCELERATOR_TYPES, CPU

GROUP = "tierserve.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Runtime = Literal["rayServe", "triton"]
Engine = Literal["vllm", "tensorrtllm", "python", "llamacpp", "simulated"]
AcceleratorType = Literal[ACCELERATOR_TYPES]  # type: ignore[valid-type]

ENGINES_FOR_RUNTIME: dict[str, tuple[str, ...]] = {
    "rayServe": ("vllm", "llamacpp", "simulated"),
    "triton": ("tensorrtllm", "vllm", "python", "llamacpp", "simulated"),
}

GpuCount = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]


class AcceleratorSpec(ApiModel):
    """What one replica runs on: an accelerator type and how many of it."""

    RULES = (
        Rule(
            cel="!has(self.gpusPerReplica) || (type(self.gpusPerReplica) == string ? "
            "self.gpusPerReplica == 'auto' : (self.gpusPerReplica >= 1 && "
            "self.gpusPerReplica <= 8))",
            message="accelerator.gpusPerReplica must be an integer from 1 to 8 or 'auto'",
            check=lambda a: a.gpus_per_replica == "auto"
            or (isinstance(a.gpus_per_replica, int) and 1 <= a.gpus_per_replica <= 8),
            field_path=".gpusPerReplica",
        ),
        Rule(
            cel="self.type == 'cpu' || !has(self.threadsPerReplica)",
            message="accelerator.threadsPerReplica is only allowed with accelerator type cpu",
            check=lambda a: a.type == CPU or a.threads_per_replica is None,
            field_path=".threadsPerReplica",
        ),
        Rule(
            cel="self.type != 'cpu' || !has(self.gpusPerReplica) || "
            "(type(self.gpusPerReplica) == string && self.gpusPerReplica == 'auto')",
            message="accelerator type cpu has no GPUs: leave accelerator.gpusPerReplica "
            "unset and set accelerator.threadsPerReplica",
            check=lambda a: a.type != CPU or a.gpus_per_replica == "auto",
            field_path=".gpusPerReplica",
        ),
    )

    type: AcceleratorType = Field(
        description="Accelerator type from the Tierserve catalog: a GPU (H200, H100-SXM, "
        "H100-PCIe, A100-80GB, A100-40GB, L40S, L4, A10G, T4, MI300X) or cpu (CPU cores, "
        "for engine llamacpp).")
    gpus_per_replica: GpuCount = Field(
        default="auto",
        description="GPUs per replica (tensor parallelism), 1 to 8, or 'auto' (default): "
        "the smallest that fits and meets the SLOs. Not for accelerator type cpu.")
    threads_per_replica: int | None = Field(
        default=None, ge=1, le=64,
        description="CPU threads per replica for accelerator type cpu: the engine's thread "
        "count and the pod's cpu request (whole cores). Unset: the smallest count the "
        "catalog's cpu entry offers (1 or 2) that meets the SLOs; the chosen count is "
        "status.sizing.threadsPerReplica.")


class SLO(ApiModel):
    """Latency targets (95th percentiles) that sizing and the autoscaler plan for."""

    RULES = (
        Rule(
            cel="!has(self.e2eP95Ms) || self.e2eP95Ms >= self.ttftP95Ms",
            message="slo.e2eP95Ms must be at least slo.ttftP95Ms",
            check=lambda s: s.e2e_p95_ms is None or s.e2e_p95_ms >= s.ttft_p95_ms,
            field_path=".e2eP95Ms",
        ),
    )

    ttft_p95_ms: int = Field(
        ge=1, le=600_000,
        description="Time to first token, 95th percentile, in milliseconds (1 to 600000), "
        "e.g. 500: from the request's arrival to its first output token, queueing included.")
    tpot_p95_ms: int = Field(
        ge=1, le=10_000,
        description="Time per output token after the first, 95th percentile, in "
        "milliseconds (1 to 10000), e.g. 50. Sizing picks the largest batch per replica "
        "that meets it.")
    e2e_p95_ms: int | None = Field(
        default=None, ge=1, le=3_600_000, alias="e2eP95Ms",
        description="Whole-request latency, 95th percentile, in milliseconds, at least "
        "ttftP95Ms, e.g. 20000. Optional and informational: sizing and the autoscaler plan "
        "for ttftP95Ms and tpotP95Ms.")
    target_attainment: float = Field(
        default=0.99, ge=0.5, le=1.0,
        description="Share of requests that must meet both targets, 0.5 to 1. Default "
        "0.99 (99%); the autoscaler adds replicas while observed attainment is below it.")


class Workload(ApiModel):
    """Typical request shape, used for sizing and cost estimates."""

    input_tokens: int = Field(
        default=1024, ge=1, le=2_097_152,
        description="Typical prompt length in tokens, for the KV cache per sequence, the "
        "prefill time (TTFT) and requests per second. Default 1024.")
    output_tokens: int = Field(
        default=256, ge=1, le=131_072,
        description="Typical answer length in tokens, for the KV cache per sequence and "
        "requests per second. Default 256.")


class Autoscaling(ApiModel):
    """How the SLO autoscaler (``tierserve autoscaler``) sets spec.replicas."""

    enabled: bool = Field(
        default=True,
        description="Whether the autoscaler manages spec.replicas. Default true; false "
        "leaves the replica count to you (kubectl scale) or to an HPA/KEDA, and the "
        "autoscaler still reports the observed SLO in status.slo.")
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Window in seconds over which the lowest recommendation wins before "
        "scaling up, 0 to 3600. Default 0 (scale up at once).")
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600,
        description="Window in seconds over which the highest recommendation wins before "
        "scaling down, 0 to 3600. Default 300 (five minutes).")
    scale_to_zero_after_seconds: int | None = Field(
        default=None, ge=30, le=86_400,
        description="Seconds without requests after which replicas go to 0, 30 to 86400; "
        "needs minReplicas: 0. Unset: never scale to zero.")
    cold_start_seconds: int | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds from adding a replica to its serving (image pull, model "
        "load), which the autoscaler plans ahead for, 0 to 3600, e.g. 120. Unset: the "
        "autoscaler's default (60).")


class LLMDeploymentSpec(ApiModel):
    """What a model owner asks for: one model, one accelerator type, one set of SLOs."""

    RULES = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must be less than or equal to maxReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
            field_path=".minReplicas",
        ),
        Rule(
            cel="self.replicas >= self.minReplicas && self.replicas <= self.maxReplicas",
            message="replicas must be between minReplicas and maxReplicas",
            check=lambda s: s.min_replicas <= s.replicas <= s.max_replicas,
            field_path=".replicas",
        ),
        Rule(
            cel="self.runtime == 'rayServe' ? self.engine in ['vllm', 'llamacpp', 'simulated'] "
            ": self.engine in ['tensorrtllm', 'vllm', 'python', 'llamacpp', 'simulated']",
            message="engine must be vllm, llamacpp or simulated for runtime rayServe, and "
            "tensorrtllm, vllm, python, llamacpp or simulated for runtime triton",
            check=lambda s: s.engine in ENGINES_FOR_RUNTIME[s.runtime],
            field_path=".engine",
        ),
        Rule(
            cel="!has(self.engineProfile) || self.engine == 'simulated'",
            message="engineProfile is only allowed with engine simulated",
            check=lambda s: s.engine_profile is None or s.engine == "simulated",
            field_path=".engineProfile",
        ),
        Rule(
            cel="self.engine == 'simulated' || "
            "((self.engine == 'llamacpp') == (self.accelerator.type == 'cpu'))",
            message="engine llamacpp runs on accelerator type cpu, and accelerator type cpu "
            "runs only engine llamacpp or simulated",
            check=lambda s: s.engine == "simulated"
            or ((s.engine == "llamacpp") == (s.accelerator.type == CPU)),
            field_path=".accelerator.type",
        ),
        Rule(
            cel="!has(self.model.quantization) || self.engine == 'simulated' || "
            "((self.engine == 'llamacpp') == (self.model.quantization in "
            f"{list(GGUF_QUANTIZATIONS)}))",
            message="model.quantization for engine llamacpp is a GGUF type (q4_0, q4_1, "
            "q4_k_m, q5_k_m, q6_k, q8_0), and GGUF types need engine llamacpp",
            check=lambda s: s.model.quantization is None or s.engine == "simulated"
            or ((s.engine == "llamacpp") == (s.model.quantization in GGUF_QUANTIZATIONS)),
            field_path=".model.quantization",
        ),
        Rule(
            cel="(!has(self.model.chatTemplate) && !has(self.model.stop) "
            "&& !has(self.model.cacheClaim)) || self.engine == 'llamacpp'",
            message="model.chatTemplate, model.stop and model.cacheClaim are only used by "
            "engine llamacpp",
            check=lambda s: (s.model.chat_template is None and s.model.stop is None
                             and s.model.cache_claim is None) or s.engine == "llamacpp",
            field_path=".model",
        ),
        Rule(
            cel="!has(self.autoscaling) || !has(self.autoscaling.scaleToZeroAfterSeconds) "
            "|| self.minReplicas == 0",
            message="autoscaling.scaleToZeroAfterSeconds requires minReplicas: 0",
            check=lambda s: s.autoscaling.scale_to_zero_after_seconds is None
            or s.min_replicas == 0,
            field_path=".autoscaling",
        ),
    )

    model: ModelSource = Field(
        description="What to serve: the name clients use, where the weights come from, "
        "their size and format.")
    runtime: Runtime = Field(
        description="What runs the replicas: rayServe (a KubeRay RayService; needs KubeRay "
        "installed) or triton (a Deployment of Triton Inference Server pods).")
    engine: Engine = Field(
        description="What serves the model: vllm, tensorrtllm, python, llamacpp (GGUF "
        "models on CPU, llama-cpp-python) or simulated (a latency profile, no model); the "
        "allowed set depends on the runtime.")
    engine_profile: str | None = Field(
        default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$",
        description="Latency profile of the simulated engine (tierserve engine --list-profiles).",
    )
    accelerator: AcceleratorSpec = Field(
        description="What one replica runs on: a GPU type and count, or CPU cores.")
    replicas: int = Field(
        default=1, ge=0, le=1000,
        description="Desired replica count, from minReplicas to maxReplicas. Default 1. "
        "The scale subresource's spec.replicas: the autoscaler (or kubectl scale, an HPA, "
        "KEDA) sets it.")
    min_replicas: int = Field(
        default=1, ge=0, le=1000,
        description="Fewest replicas the autoscaler keeps. Default 1; 0 allows scaling to "
        "zero (with autoscaling.scaleToZeroAfterSeconds).")
    max_replicas: int = Field(default=4, ge=1, le=1000,
                              description="Most replicas the autoscaler runs. Default 4.")
    slo: SLO = Field(description="Latency targets that sizing and the autoscaler plan for.")
    workload: Workload = Field(
        default_factory=Workload,
        description="Typical request shape, for sizing and cost estimates.")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling,
        description="How the SLO autoscaler sets spec.replicas (on by default).")
    secrets: Secrets = Field(
        default_factory=Secrets,
        description="Secrets the engine gets by reference (Hugging Face token, "
        "credentials).")
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="Node selector, tolerations and priority class of the engine pods.")
    env: list[EnvVar] = Field(
        default_factory=list, max_length=64,
        description="Extra plain environment variables of the engine container (up to 64); "
        "secret values go in secrets.env.")
    args: list[str] = Field(
        default_factory=list, max_length=64,
        description="Extra arguments appended to the engine container's arguments (up to "
        "64), e.g. [\"--log-verbose=1\"] for tritonserver.")
    resources: Resources = Field(
        default_factory=Resources,
        description="Extra or overriding requests and limits of the engine container.")

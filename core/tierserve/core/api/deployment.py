"""``LLMDeployment``: one model, one accelerator type (a GPU, or CPU cores), one set of SLOs.

The spec is what a model owner writes; the status is what the operator and the
autoscaler report back (sizing plan, replicas, conditions, observed SLO attainment).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from tierserve.core.api.base import ApiModel, Rule
from tierserve.core.api.model import DNS_SUBDOMAIN, GGUF_QUANTIZATIONS, ModelSource
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
    RULES = (
        Rule(
            cel="!has(self.e2eP95Ms) || self.e2eP95Ms >= self.ttftP95Ms",
            message="slo.e2eP95Ms must be at least slo.ttftP95Ms",
            check=lambda s: s.e2e_p95_ms is None or s.e2e_p95_ms >= s.ttft_p95_ms,
            field_path=".e2eP95Ms",
        ),
    )

    ttft_p95_ms: int = Field(ge=1, le=600_000, description="Time to first token, p95, ms.")
    tpot_p95_ms: int = Field(ge=1, le=10_000, description="Time per output token, p95, ms.")
    e2e_p95_ms: int | None = Field(default=None, ge=1, le=3_600_000, alias="e2eP95Ms")
    target_attainment: float = Field(default=0.99, ge=0.5, le=1.0)


class Workload(ApiModel):
    """Typical request shape, used for sizing and cost estimates."""

    input_tokens: int = Field(default=1024, ge=1, le=2_097_152)
    output_tokens: int = Field(default=256, ge=1, le=131_072)


class Autoscaling(ApiModel):
    enabled: bool = True
    scale_up_stabilization_seconds: int = Field(default=0, ge=0, le=3600)
    scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=3600)
    scale_to_zero_after_seconds: int | None = Field(default=None, ge=30, le=86_400)
    cold_start_seconds: int | None = Field(default=None, ge=0, le=3600)


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class SecretRef(ApiModel):
    secret_key_ref: SecretKeyRef


class SecretEnv(ApiModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    secret_key_ref: SecretKeyRef


class EnvVar(ApiModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    value: str = Field(default="", max_length=32_768)


class Secrets(ApiModel):
    hf_token: SecretRef | None = None
    env: list[SecretEnv] = Field(default_factory=list, max_length=32)


class Toleration(ApiModel):
    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True,
                    "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}),
]


class Resources(ApiModel):
    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=16)
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=16)


class Scheduling(ApiModel):
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    priority_class_name: str | None = Field(default=None, max_length=253)


class LLMDeploymentSpec(ApiModel):
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

    model: ModelSource
    runtime: Runtime
    engine: Engine = Field(
        description="What serves the model: vllm, tensorrtllm, python, llamacpp (GGUF "
        "models on CPU, llama-cpp-python) or simulated (a latency profile, no model); the "
        "allowed set depends on the runtime.")
    engine_profile: str | None = Field(
        default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$",
        description="Latency profile of the simulated engine (tierserve engine --list-profiles).",
    )
    accelerator: AcceleratorSpec
    replicas: int = Field(default=1, ge=0, le=1000)
    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int = Field(default=4, ge=1, le=1000)
    slo: SLO
    workload: Workload = Field(default_factory=Workload)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    secrets: Secrets = Field(default_factory=Secrets)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    args: list[str] = Field(default_factory=list, max_length=64)
    resources: Resources = Field(default_factory=Resources)


class StatusModel(ApiModel):
    """Status types: mutable, and tolerant of fields written by newer versions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class SizingPlan(StatusModel):
    """The operator's sizing of one replica (docs/sizing.md). CPU replicas (accelerator
    type cpu) have ``gpusPerReplica: 0`` and their cores in ``threadsPerReplica``."""

    gpus_per_replica: int
    threads_per_replica: int | None = None
    weights_gib: float
    kv_cache_gib: float
    kv_bytes_per_token: int
    max_batch_per_replica: int
    est_tpot_ms: float
    est_ttft_ms: float
    tokens_per_second_per_replica: float
    requests_per_second_per_replica: float
    cost_per_million_tokens_usd: float


class SLOStatus(StatusModel):
    """Observed SLO attainment, written by the autoscaler over its last window."""

    observed_ttft_p95_ms: float | None = None
    observed_tpot_p95_ms: float | None = None
    ttft_target_ms: int | None = None
    tpot_target_ms: int | None = None
    attainment: float | None = None
    target_attainment: float | None = None
    window_seconds: float | None = None
    desired_replicas: int | None = None
    updated: str | None = None


class LLMDeploymentStatus(StatusModel):
    observed_generation: int | None = None
    replicas: int = 0
    ready_replicas: int = 0
    replicas_summary: str | None = None
    slo_summary: str | None = None
    selector: str | None = None
    endpoint: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    sizing: SizingPlan | None = None
    slo: SLOStatus | None = None

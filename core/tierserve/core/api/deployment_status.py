"""``LLMDeployment.status``: what the operator and the autoscaler report back.

The operator writes the sizing plan, replica counts, the endpoint and the conditions;
the autoscaler writes ``slo`` (observed attainment over its window). Units are in the
field names (``Ms``, ``Gib``, ``Usd``) and repeated in the descriptions, which
``kubectl explain llmdeployment.status`` shows.
"""

from __future__ import annotations

from pydantic import Field

from tierserve.core.api.conditions import Condition, Generation, StatusModel


class SizingPlan(StatusModel):
    """The operator's sizing of one replica (docs/sizing.md). CPU replicas (accelerator
    type cpu) have ``gpusPerReplica: 0`` and their cores in ``threadsPerReplica``."""

    gpus_per_replica: int = Field(
        description="GPUs per replica (tensor-parallel degree) the plan chose; 0 for "
        "accelerator type cpu.")
    threads_per_replica: int | None = Field(
        default=None,
        description="CPU threads (whole cores) per replica, for accelerator type cpu only.")
    weights_gib: float = Field(description="Model weights per replica, GiB.")
    kv_cache_gib: float = Field(
        description="Accelerator memory per replica left for the KV cache after the "
        "weights and the runtime's overhead, GiB.")
    kv_bytes_per_token: int = Field(description="KV-cache bytes one token takes, all layers.")
    max_batch_per_replica: int = Field(
        description="Most sequences one replica runs at once within slo.tpotP95Ms and the "
        "KV cache (for spec.workload's request shape).")
    est_tpot_ms: float = Field(
        description="Estimated time per output token at that batch, milliseconds.")
    est_decode_step_ms: float | None = Field(
        default=None,
        description="Estimated decode step with one running sequence, milliseconds: the "
        "least time per output token; the autoscaler's model of TPOT misses from prompts "
        "prefilled beside an answer uses it.")
    est_ttft_ms: float = Field(
        description="Estimated time to first token for spec.workload.inputTokens, with no "
        "queueing, milliseconds.")
    tokens_per_second_per_replica: float = Field(
        description="Estimated output tokens per second of one replica at that batch.")
    requests_per_second_per_replica: float = Field(
        description="Estimated requests per second of one replica, for spec.workload's "
        "request shape.")
    cost_per_million_tokens_usd: float = Field(
        description="Estimated cost of one million output tokens at that rate, US dollars, "
        "from the catalog's hourly price of the accelerators of one replica.")


class SizingStatus(SizingPlan):
    """``status.sizing``: the plan, and the spec generation it was made for."""

    observed_generation: Generation | None = Field(
        default=None,
        description="metadata.generation this plan was made for. Below the conditions' "
        "observedGeneration, that later generation could not be planned (the Ready "
        "condition says why) and this plan is what the running children still serve.")


class SLOStatus(StatusModel):
    """Observed SLO attainment, written by the autoscaler over its last window."""

    observed_ttft_p95_ms: float | None = Field(
        default=None, description="Observed time to first token, 95th percentile, ms.")
    observed_tpot_p95_ms: float | None = Field(
        default=None, description="Observed time per output token, 95th percentile, ms.")
    ttft_target_ms: int | None = Field(
        default=None, description="The TTFT target the window was judged against, ms.")
    tpot_target_ms: int | None = Field(
        default=None, description="The TPOT target the window was judged against, ms.")
    attainment: float | None = Field(
        default=None,
        description="Observed share of requests that met both targets, 0 to 1 (0.995 is "
        "99.5%).")
    target_attainment: float | None = Field(
        default=None, description="The share asked for (spec.slo.targetAttainment), 0 to 1.")
    window_seconds: float | None = Field(
        default=None, description="Length of the observation window, seconds.")
    desired_replicas: int | None = Field(
        default=None, description="Replica count the autoscaler decided for this window.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="The autoscaler's verdict, one condition: SLOAttainable, False with "
        "reason MaxReplicasReached while the demand needs more replicas than maxReplicas "
        "allows (the message says how many), True with reason WithinMaxReplicas otherwise.")
    updated: str | None = Field(
        default=None,
        description="When the autoscaler wrote this block (RFC 3339, UTC), e.g. "
        "2026-01-02T03:04:05Z.")


class LLMDeploymentStatus(StatusModel):
    """What the operator and the autoscaler report back."""

    observed_generation: Generation | None = Field(
        default=None,
        description="metadata.generation of the spec the operator last acted on; below "
        "metadata.generation, the operator has not processed the latest spec yet.")
    replicas: int = Field(
        default=0,
        description="Replicas that exist now (ready or not); the scale subresource's "
        "status.replicas.")
    ready_replicas: int = Field(default=0, description="Replicas serving requests now.")
    replicas_summary: str | None = Field(
        default=None, description="ready/desired replicas, e.g. 2/3 (the REPLICAS column).")
    slo_summary: str | None = Field(
        default=None,
        description="TTFT/TPOT p95 targets and observed attainment, e.g. \"ttft<=500ms "
        "tpot<=50ms (99.2%)\" (the SLO column).")
    selector: str | None = Field(
        default=None,
        description="Label selector of the engine pods, for the scale subresource (so an "
        "HPA or KEDA can target the object), e.g. tierserve.io/deployment=llama.")
    endpoint: str | None = Field(
        default=None,
        description="In-cluster URL of the runtime's Service: Ray Serve's OpenAI API, e.g. "
        "http://llama-serve-svc.team.svc:8000, or Triton's HTTP API, e.g. "
        "http://llama.team.svc:8000. Clients normally go through an LLMRoute.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing and Degraded, each with a reason (docs/api.md).")
    sizing: SizingStatus | None = Field(
        default=None,
        description="The sizing plan of one replica: GPUs or threads, memory, batch, "
        "estimated latency, throughput and cost.")
    slo: SLOStatus | None = Field(
        default=None,
        description="Observed SLO attainment, written by the autoscaler over its last "
        "window.")

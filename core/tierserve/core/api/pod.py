"""What the engine pods get passed through from ``spec``: secrets by reference, plain
environment, scheduling and extra resources.

These fields are copied into the pod templates the runtimes build (Ray worker pods or
Triton pods) without interpretation, beyond merging them over what the operator sets.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from tierserve.core.api.base import ApiModel
from tierserve.core.api.model import DNS_SUBDOMAIN


class SecretKeyRef(ApiModel):
    """One key of a Secret in the LLMDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                      description="Name of the Secret, in the LLMDeployment's namespace.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="Key within the Secret's data, e.g. token.")


_SECRET_KEY_REF = ("The Secret key whose value the engine container gets (as "
                   "valueFrom.secretKeyRef; the operator never reads the value).")


class SecretRef(ApiModel):
    """A value taken from a Secret."""

    secret_key_ref: SecretKeyRef = Field(description=_SECRET_KEY_REF)


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SecretEnv(ApiModel):
    """An environment variable of the engine container whose value is in a Secret."""

    name: str = Field(pattern=_ENV_NAME, max_length=128,
                      description="Variable name, e.g. AWS_ACCESS_KEY_ID.")
    secret_key_ref: SecretKeyRef = Field(description=_SECRET_KEY_REF)


class EnvVar(ApiModel):
    """A plain environment variable of the engine container."""

    name: str = Field(pattern=_ENV_NAME, max_length=128,
                      description="Variable name, e.g. VLLM_LOGGING_LEVEL.")
    value: str = Field(default="", max_length=32_768,
                       description="Value, up to 32768 characters. Default empty.")


class Secrets(ApiModel):
    """Secrets the engine gets by reference; their values never pass through the operator."""

    hf_token: SecretRef | None = Field(
        default=None,
        description="Hugging Face token for gated hf:// models, set as HF_TOKEN in the "
        "engine container.")
    env: list[SecretEnv] = Field(
        default_factory=list, max_length=32,
        description="Environment variables from Secrets (up to 32), e.g. the S3 or GCS "
        "credentials an s3:// or gs:// model.uri needs.")


class Toleration(ApiModel):
    """A Kubernetes toleration, added to the engine pods as written."""

    key: str | None = Field(default=None, max_length=316,
                            description="Taint key to tolerate; empty with operator Exists "
                            "tolerates every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists (any value) or Equal (value must match). "
        "Kubernetes' default: Equal.")
    value: str | None = Field(default=None, max_length=63,
                              description="Taint value to match with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches every effect.")
    toleration_seconds: int | None = Field(
        default=None,
        description="With effect NoExecute: seconds the pod stays bound after the taint "
        "appears. Unset: forever.")


Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True,
                    "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}),
]


class Resources(ApiModel):
    """Engine container resources over the ones the sizing plan sets (GPUs, cpu, memory)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16,
        description="Requests by resource name, as Kubernetes quantities, e.g. {memory: "
        "48Gi, ephemeral-storage: 20Gi}; a name given here wins over the operator's value.")
    limits: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16,
        description="Limits by resource name, as Kubernetes quantities, e.g. {memory: "
        "64Gi}; a name given here wins over the operator's value.")


class Scheduling(ApiModel):
    """Where the engine pods may run, passed through to their pod spec."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=32,
        description="Node labels the pods require, merged over the accelerator type's own "
        "(e.g. nvidia.com/gpu.product); a key given here wins.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32,
        description="Tolerations added to the pods, after the GPU taint's own toleration "
        "that GPU types get.")
    priority_class_name: str | None = Field(
        default=None, max_length=253,
        description="PriorityClass of the pods, e.g. high-priority. Unset: the cluster's "
        "default.")

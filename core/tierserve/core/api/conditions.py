"""Status building blocks shared by both kinds: the status base model and conditions.

A condition has the shape and the limits of Kubernetes' ``metav1.Condition``
(k8s.io/apimachinery/pkg/apis/meta/v1/types.go), so ``kubectl wait --for=condition=Ready``
and generic tooling read it, and the API server refuses what upstream refuses: the same
required fields, ``reason`` pattern and lengths. The pydantic type enforces them too, so a
writer with a bad reason fails in its unit tests rather than at the API server; a message
longer than the API server accepts is cut instead (it is prose, often an error's text).
``lastTransitionTime`` is the exception: its ``format: date-time`` is left to the API
server, because the operator's clocks are injected and unit tests pass labels such as
``"T0"`` (the real clocks write RFC 3339, which a unit test checks).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.alias_generators import to_camel

from tierserve.core.api.base import ApiModel

# upstream's kubebuilder markers on metav1.Condition
CONDITION_TYPE = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_MESSAGE = 32768

Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Generation = Annotated[int, Field(ge=0, json_schema_extra={"format": "int64"})]


class StatusModel(ApiModel):
    """Status types: mutable, and tolerant of fields written by newer versions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One aspect of the object's state, shaped as Kubernetes' metav1.Condition."""

    type: str = Field(
        max_length=316, pattern=CONDITION_TYPE,
        description="Condition type, CamelCase: Ready, Progressing or Degraded on an "
        "LLMDeployment, Ready on an LLMRoute.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, max_length=1024, pattern=CONDITION_REASON,
        description="Why, as one CamelCase word for programs, e.g. ReplicasReady, "
        "InsufficientGPUMemory or DeploymentNotFound (docs/api.md lists them).")
    message: str = Field(
        max_length=MAX_MESSAGE,
        description="Why, for people: what was found and what to do; may be empty.")
    last_transition_time: Time = Field(
        description="When status last changed (RFC 3339, UTC), e.g. 2026-01-02T03:04:05Z; "
        "recomputing an unchanged condition keeps it.")
    observed_generation: Generation | None = Field(
        default=None,
        description="metadata.generation of the spec this condition was computed from; "
        "below the object's generation, the condition describes an older spec.")

    @field_validator("message", mode="before")
    @classmethod
    def _cut(cls, value: object) -> object:
        if isinstance(value, str) and len(value) > MAX_MESSAGE:
            return value[: MAX_MESSAGE - 3] + "..."
        return value

"""Pure status derivation: what the runtime looks like -> the LLMDeployment status.

Conditions follow Kubernetes conventions: ``lastTransitionTime`` changes only when a
condition's status changes, so recomputing an unchanged status yields an identical
object and the operator writes nothing.

``status.sizing`` carries the generation it was planned for (``observedGeneration``):
when a later generation cannot be planned (an SLO made unattainable on a live object),
the conditions carry the new generation and say so, while ``sizing`` keeps describing
what the running children, built for the older generation, still serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierserve.core.api.deployment import Condition, LLMDeploymentSpec, SizingPlan
from tierserve.core.runtimes.base import Readiness, replica_readiness


@dataclass(frozen=True)
class Observed:
    """What a realizer (Kubernetes children or local processes) reports."""

    replicas: int
    ready_replicas: int
    endpoint: str | None = None
    unschedulable: str | None = None  # scheduler message when pods cannot be placed
    failure: str | None = None  # runtime-level failure (e.g. local server crashed)
    readiness: Readiness | None = None  # the runtime's verdict (None: replica counts)

    @classmethod
    def of(cls, readiness: Readiness, endpoint: str | None = None,
           unschedulable: str | None = None, failure: str | None = None) -> Observed:
        return cls(readiness.replicas, readiness.ready_replicas, endpoint=endpoint,
                   unschedulable=unschedulable, failure=failure, readiness=readiness)


@dataclass(frozen=True)
class Problem:
    """Why the deployment cannot be realized at all (invalid spec or sizing)."""

    reason: str
    message: str


def cond(type_: str, ok: bool, reason: str, message: str, generation: int | None,
          old: dict[str, Condition], now: str) -> Condition:
    status = "True" if ok else "False"
    prev = old.get(type_)
    since = prev.last_transition_time if prev and prev.status == status else now
    return Condition(type=type_, status=status, reason=reason, message=message,
                     last_transition_time=since, observed_generation=generation)


def _ready(spec: LLMDeploymentSpec, obs: Observed) -> tuple[bool, str, str]:
    """Pods that cannot be placed and runtime failures first, then the runtime's verdict."""
    if obs.unschedulable:
        return False, "Unschedulable", obs.unschedulable
    if obs.failure:
        return False, "RuntimeFailure", obs.failure
    verdict = obs.readiness or replica_readiness(spec.replicas, obs.replicas,
                                                 obs.ready_replicas)
    return verdict.ready, verdict.reason, verdict.message


def slo_summary(spec: LLMDeploymentSpec, old_status: dict[str, Any]) -> str:
    text = f"ttft<={spec.slo.ttft_p95_ms}ms tpot<={spec.slo.tpot_p95_ms}ms"
    attained = (old_status.get("slo") or {}).get("attainment")
    if attained is not None:
        text += f" ({100 * float(attained):.1f}%)"
    return text


def compute(spec: LLMDeploymentSpec, plan: SizingPlan, obs: Observed, selector: str,
            generation: int | None, old_status: dict[str, Any], now: str) -> dict[str, Any]:
    """The operator-owned part of the status (the autoscaler owns ``status.slo``)."""
    old = {c["type"]: Condition.model_validate(c) for c in old_status.get("conditions", [])}
    ok, reason, message = _ready(spec, obs)
    scaling = obs.replicas != spec.replicas or obs.ready_replicas != spec.replicas
    conditions = [
        cond("Ready", ok, reason, message, generation, old, now),
        cond("Progressing", scaling and not obs.unschedulable,
              "Scaling" if scaling else "Stable",
              f"{obs.ready_replicas} ready, {obs.replicas} current, {spec.replicas} desired",
              generation, old, now),
        cond("Degraded", bool(obs.unschedulable or obs.failure),
              "Unschedulable" if obs.unschedulable else
              ("RuntimeFailure" if obs.failure else "AsExpected"),
              obs.unschedulable or obs.failure or "", generation, old, now),
    ]
    return {
        "observedGeneration": generation,
        "replicas": obs.replicas,
        "readyReplicas": obs.ready_replicas,
        "replicasSummary": f"{obs.ready_replicas}/{spec.replicas}",
        "sloSummary": slo_summary(spec, old_status),
        "selector": selector,
        "endpoint": obs.endpoint,
        "conditions": [c.wire() for c in conditions],
        "sizing": {**plan.wire(), "observedGeneration": generation},
    }


def cannot_plan(problem: Problem, generation: int | None,
                old_status: dict[str, Any]) -> Problem:
    """A spec generation that cannot be planned (invalid, or no sizing meets it): the
    message names the generation and, when an earlier plan's children still run, which
    generation ``status.sizing`` (left as it is) describes."""
    message = f"generation {generation} cannot be planned: {problem.message}"
    sizing = old_status.get("sizing")
    if sizing:
        served = sizing.get("observedGeneration")
        plan = f"generation {served}'s plan" if served is not None else "an earlier plan"
        message += (f"; the running children are left as they are and keep serving {plan} "
                    "(status.sizing)")
    return Problem(problem.reason, message)


def compute_problem(problem: Problem, generation: int | None, old_status: dict[str, Any],
                    now: str) -> dict[str, Any]:
    old = {c["type"]: Condition.model_validate(c) for c in old_status.get("conditions", [])}
    conditions = [
        cond("Ready", False, problem.reason, problem.message, generation, old, now),
        cond("Progressing", False, problem.reason, problem.message, generation, old, now),
        cond("Degraded", True, problem.reason, problem.message, generation, old, now),
    ]
    return {"observedGeneration": generation, "conditions": [c.wire() for c in conditions]}


def differs(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """True when ``new`` (the operator-owned fields) is not already in ``old``."""
    return any(old.get(k) != v for k, v in new.items() if v is not None)

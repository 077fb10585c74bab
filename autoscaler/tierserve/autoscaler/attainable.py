"""Is the SLO attainable within maxReplicas? The autoscaler's condition and its Events.

A policy that needs more replicas than ``maxReplicas`` allows still decides
``maxReplicas``, but that is not a normal decision: the deployment will miss its SLO
whatever the autoscaler does, and someone has to raise the limit (or accept the misses).
So the controller turns each decision into a verdict, writes it as the ``SLOAttainable``
condition of ``status.slo`` and posts an Event when it changes: a Warning
``SLOUnattainable`` when the demand first exceeds the limit, a Normal ``SLOAttainable``
when it fits again. Pure: the controller owns the clock and the writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tierserve.autoscaler.types import Decision, Limits

CONDITION = "SLOAttainable"
UNATTAINABLE_EVENT = "SLOUnattainable"
ATTAINABLE_EVENT = "SLOAttainable"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # the condition's CamelCase reason
    message: str


def verdict(decision: Decision, limits: Limits) -> Verdict | None:
    """The decision's verdict; None when it says nothing (a hold, or no count computed)."""
    needed = decision.needed_replicas
    if decision.held or needed is None:
        return None
    cap = limits.max_replicas
    if needed > cap:
        return Verdict(False, "MaxReplicasReached",
                       f"SLO unattainable within maxReplicas {cap}: the demand needs "
                       f"{needed} replicas; raise maxReplicas or expect misses")  # fmt: skip
    return Verdict(True, "WithinMaxReplicas", f"the demand needs {needed} of at most {cap} "
                   "replicas")  # fmt: skip


def transition_event(
    old: Verdict | None, new: Verdict, why: str
) -> tuple[str, str, bool] | None:
    """(reason, message, warning) of the Event for a change of verdict, ``why`` the
    decision's reason; None for no change. Attainable from the start posts nothing."""
    if old is not None and old.ok == new.ok:
        return None
    if not new.ok:
        return UNATTAINABLE_EVENT, f"{new.message} ({why})", True
    if old is not None:
        return ATTAINABLE_EVENT, f"SLO attainable again: {new.message}", False
    return None


def condition(v: Verdict, since: float) -> dict[str, Any]:
    """The condition as written to ``status.slo.conditions`` (metav1.Condition's shape)."""
    return {
        "type": CONDITION,
        "status": "True" if v.ok else "False",
        "reason": v.reason,
        "message": v.message,
        "lastTransitionTime": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

"""Scaling policies: pure functions ``PolicyContext -> Decision``.

``make_policy`` builds one by name from keyword knobs, so the simulator, the controller
and the benchmark select policies the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelplane.autoscaler.policy.baselines import FixedPolicy, HpaPolicy, KpaPolicy, OraclePolicy
from modelplane.autoscaler.policy.slo import SloPolicy
from modelplane.autoscaler.types import Decision, PolicyContext

Policy = Callable[[PolicyContext], Decision]

POLICIES: Mapping[str, type[SloPolicy | HpaPolicy | KpaPolicy | FixedPolicy | OraclePolicy]] = {
    "slo": SloPolicy,
    "hpa": HpaPolicy,
    "kpa": KpaPolicy,
    "fixed": FixedPolicy,
    "oracle": OraclePolicy,
}


def make_policy(name: str, **knobs: Any) -> Policy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None
    return cls(**knobs)


__all__ = [
    "POLICIES",
    "FixedPolicy",
    "HpaPolicy",
    "KpaPolicy",
    "OraclePolicy",
    "Policy",
    "SloPolicy",
    "make_policy",
]

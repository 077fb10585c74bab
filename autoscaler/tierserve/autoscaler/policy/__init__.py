"""Scaling policies: pure functions ``PolicyContext -> Decision``.

``make_policy`` builds one by name from keyword knobs, so the simulator, the controller
and the benchmark select policies the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from tierserve.autoscaler.policy.baselines import FixedPolicy, HpaPolicy, KpaPolicy, OraclePolicy
from tierserve.autoscaler.policy.slo import SloPolicy
from tierserve.autoscaler.types import Decision, PolicyContext

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


def parse_knobs(pairs: list[str], flag: str = "--knob") -> dict[str, Any]:
    """``NAME=VALUE`` pairs from a command line; values are YAML scalars (``2`` is an
    int, ``0.5`` a float, ``true`` a bool). Both CLIs (live and simulator) use this."""
    knobs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} {pair!r}: expected NAME=VALUE")
        knobs[name] = yaml.safe_load(value)
    return knobs


__all__ = [
    "POLICIES",
    "FixedPolicy",
    "HpaPolicy",
    "KpaPolicy",
    "OraclePolicy",
    "Policy",
    "SloPolicy",
    "make_policy",
    "parse_knobs",
]

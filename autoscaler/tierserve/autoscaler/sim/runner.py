"""Run one policy, or all of them, over a trace: the glue behind ``tierserve sim``.

The scenario (trace, profile, SLO, limits) is one pydantic object so the CLI, the
benchmark and the tests build runs the same way and bad values are reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tierserve.autoscaler.policy import OraclePolicy, make_policy
from tierserve.autoscaler.sim.bound import MissTable, miss_table
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.oracle import OracleSchedule, oracle_schedule
from tierserve.autoscaler.sim.profiles import get_sim_profile
from tierserve.autoscaler.sim.results import SimResult, summarize
from tierserve.autoscaler.sim.trace import Trace
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import capacity_from_profile
from tierserve.core.latency import LatencyProfile

# How often each policy runs: Knative evaluates every 2 s, the HPA every 15 s.
DEFAULT_INTERVAL_S: Mapping[str, float] = {
    "slo": 10.0, "hpa": 15.0, "kpa": 2.0, "fixed": 10.0, "oracle": 10.0,
}  # fmt: skip


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = "llama-3.1-70b-a100x2-est"
    slo: Slo
    limits: Limits
    sample_s: float = Field(default=2.0, gt=0)
    window_s: float = Field(default=300.0, gt=0)
    initial_replicas: int | None = Field(
        default=None, ge=0, description="None: the oracle's first bucket (a warm start)"
    )
    oracle_bucket_s: float = Field(default=60.0, gt=0)
    replica_start_s: float | None = Field(
        default=None, ge=0,
        description="how long a new replica really takes to serve, when it differs from "
        "the cold start the policy is told (limits.cold_start_s, also the default): a "
        "simulation of measured replicas uses the measured start",
    )


@dataclass(frozen=True)
class Run:
    result: SimResult
    summary: dict[str, object]


class Runner:
    """Holds what every policy run shares: the trace, the profile, the oracle schedule."""

    def __init__(self, trace: Trace, scenario: Scenario,
                 profile: LatencyProfile | None = None) -> None:
        """``profile``: one not in the catalogue (a fit of this machine, say); without
        it the scenario's named one."""
        self.trace, self.scenario = trace, scenario
        self.profile: LatencyProfile = profile or get_sim_profile(scenario.profile)
        prompt = sum(r.prompt_tokens for r in trace) / len(trace)
        output = sum(r.output_tokens for r in trace) / len(trace)
        self.capacity = capacity_from_profile(
            self.profile, scenario.slo.tpot_p95_ms, prompt_tokens=prompt, output_tokens=output
        )
        self._oracle: OracleSchedule | None = None
        self._misses: MissTable | None = None

    def settings(self, interval_s: float, initial: int | None = None,
                 noise_seed: int = 0) -> SimSettings:
        s = self.scenario
        return SimSettings(
            slo=s.slo,
            limits=s.limits,
            capacity=self.capacity,
            interval_s=interval_s,
            sample_s=s.sample_s,
            window_s=s.window_s,
            initial_replicas=self.initial() if initial is None else initial,
            noise_seed=noise_seed,
        )

    def initial(self) -> int:
        """Every policy starts from the same count: the most the oracle needs before any
        policy could have added a replica (one cold start plus a bucket). Starting the
        replay mid-traffic with less would charge every policy for an artefact."""
        if self.scenario.initial_replicas is not None:
            return self.scenario.initial_replicas
        sched = self.oracle()
        reach = math.ceil(self.scenario.limits.cold_start_s / sched.bucket_s) + 1
        return max(1, *sched.replicas[:reach])

    def oracle(self) -> OracleSchedule:
        if self._oracle is None:
            self._oracle = oracle_schedule(
                self.trace,
                self.profile,
                self.settings(10.0, initial=1),
                bucket_s=self.scenario.oracle_bucket_s,
            )
        return self._oracle

    def bound(self) -> MissTable:
        """Per-minute misses around the oracle's counts: the clairvoyant bound at any
        overall attainment (``bound().gpu_hours_at(a)``, see ``sim/bound.py``)."""
        if self._misses is None:
            self._misses = miss_table(self.trace, self.profile, self.settings(10.0, initial=1),
                                      self.oracle())  # fmt: skip
        return self._misses

    def run(self, name: str, knobs: Mapping[str, Any] | None = None, *,
            noise_seed: int = 0) -> Run:
        """One policy run (``noise_seed``: the host-noise draw, for noisy profiles)."""
        knobs = dict(knobs or {})
        interval = float(knobs.pop("interval_s", DEFAULT_INTERVAL_S.get(name, 10.0)))
        cold: float | None = self.scenario.replica_start_s
        initial: int | None = None
        if name == "oracle":
            sched = self.oracle()
            policy: Any = OraclePolicy(schedule=sched.replicas, bucket_s=sched.bucket_s)
            cold, initial = 0.0, max(1, sched.replicas[0] if sched.replicas else 1)
        else:
            if name == "slo":
                knobs.setdefault("interval_s", interval)
            policy = make_policy(name, **knobs)
            if name == "fixed":
                initial = int(knobs["replicas"])
        sim = Simulation(
            self.trace,
            self.profile,
            self.settings(interval, initial, noise_seed),
            policy,
            policy_name=name,
            cold_start_s=cold,
        )
        result = sim.run()
        summary = summarize(result, self.scenario.slo, self.oracle().gpu_hours)
        summary["interval_s"] = interval
        if knobs:
            summary["knobs"] = {k: v for k, v in knobs.items() if k != "interval_s"}
        return Run(result, summary)

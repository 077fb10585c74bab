"""Baseline policies with the same signature as ours: HPA, Knative KPA, fixed, oracle.

They reimplement the published algorithms (not the code) so the benchmark compares
like with like: same metrics window, same bounds, same scale-to-zero rules.

* HPA (Kubernetes ``autoscaling/v2``, Pods metric): ``desired = ceil(current * metric /
  target)`` with the average taken over all current pods (pods not yet ready count as
  zero, as the HPA does when scaling up); no change within the 10% tolerance; scale-up
  limited by the default policies (``max(+100%, +4 pods)`` per 15 s period); scale-down
  stabilized over 300 s (the highest recommendation of the last five minutes wins).
* KPA (Knative Pod Autoscaler): desired from in-flight concurrency averaged over a 60 s
  stable window and a 6 s panic window; panic mode when the panic desired count is at
  least 200% of the ready pods; in panic the count never decreases, and panic ends one
  stable window after the last panic condition; max scale-up rate 1000x, max scale-down
  rate 2x per decision; optional scale-down delay (the highest count of the delay window).
* Fixed: a constant count.
* Oracle: replays a precomputed per-bucket schedule (see ``tierserve.autoscaler.sim.oracle``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from tierserve.autoscaler.policy.common import clamp, finalize, hold, missing_or_stale
from tierserve.autoscaler.policy.signals import mean
from tierserve.autoscaler.types import Decision, PolicyContext


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HpaPolicy(_Policy):
    target: float = Field(default=16.0, gt=0, description="running requests per replica")
    tolerance: float = Field(default=0.1, ge=0)
    metric_window_s: float = Field(default=30.0, gt=0)
    scale_down_stabilization_s: float = Field(default=300.0, ge=0)
    scale_up_stabilization_s: float = Field(default=0.0, ge=0)
    up_percent: float = Field(default=100.0, gt=0)
    up_pods: int = Field(default=4, ge=1)

    def __call__(self, ctx: PolicyContext) -> Decision:
        stale = missing_or_stale(ctx)
        if stale is not None:
            return hold(ctx, stale)
        recent = ctx.window.since(ctx.now - self.metric_window_s) or ctx.window.samples[-1:]
        total = mean([float(s.running) for s in recent])
        current = max(ctx.state.current_replicas, 1)
        ratio = total / (current * self.target)
        within = abs(ratio - 1) <= self.tolerance
        if within:
            raw, why = current, f"ratio {ratio:.2f} within tolerance"
        else:
            raw, why = math.ceil(round(total / self.target, 6)), f"ratio {ratio:.2f}"
        limit = max(math.ceil(current * (1 + self.up_percent / 100)), current + self.up_pods)
        raw = min(raw, limit)
        reason = f"hpa: {total:.1f} running / target {self.target:g} per replica, {why} -> {raw}"
        return finalize(
            ctx,
            raw,
            reason,
            up_window_s=self.scale_up_stabilization_s,
            down_window_s=self.scale_down_stabilization_s,
            inputs={"running_requests": total, "utilization_ratio": ratio},
            cause="tolerance" if within else "utilization",
        )


class KpaPolicy(_Policy):
    target: float = Field(default=16.0, gt=0, description="in-flight requests per replica")
    stable_window_s: float = Field(default=60.0, gt=0)
    panic_window_s: float = Field(default=6.0, gt=0)
    panic_threshold: float = Field(default=2.0, gt=1)
    max_scale_up_rate: float = Field(default=1000.0, gt=1)
    max_scale_down_rate: float = Field(default=2.0, gt=1)
    scale_down_delay_s: float = Field(default=0.0, ge=0, description="Knative scale-down-delay")

    def __call__(self, ctx: PolicyContext) -> Decision:
        stale = missing_or_stale(ctx)
        if stale is not None:
            return hold(ctx, stale)
        now, state = ctx.now, ctx.state
        stable = self._avg(ctx, self.stable_window_s)
        panic = self._avg(ctx, self.panic_window_s)
        ready = max(state.ready_replicas, 1)
        want_stable = math.ceil(round(stable / self.target, 6))
        want_panic = math.ceil(round(panic / self.target, 6))
        panic_until = float(state.memo.get("panic_until", -math.inf))
        if want_panic / ready >= self.panic_threshold:
            panic_until = now + self.stable_window_s
        in_panic = now < panic_until
        # panic never scales down
        raw = max(want_panic, state.current_replicas) if in_panic else want_stable
        raw = min(raw, math.ceil(ready * self.max_scale_up_rate))
        raw = max(raw, math.floor(ready / self.max_scale_down_rate))
        reason = (
            f"kpa: concurrency stable {stable:.1f} panic {panic:.1f} / target {self.target:g}"
            f"{' (panic mode)' if in_panic else ''} -> {raw}"
        )
        return finalize(
            ctx,
            raw,
            reason,
            up_window_s=0.0,
            down_window_s=self.scale_down_delay_s,
            inputs={"stable_concurrency": stable, "panic_concurrency": panic},
            memo={**state.memo, "panic_until": panic_until},
            cause="panic" if in_panic else "concurrency",
        )

    @staticmethod
    def _avg(ctx: PolicyContext, window_s: float) -> float:
        recent = ctx.window.since(ctx.now - window_s) or ctx.window.samples[-1:]
        return mean([float(s.running + s.waiting) for s in recent])


class FixedPolicy(_Policy):
    replicas: int = Field(ge=1)

    def __call__(self, ctx: PolicyContext) -> Decision:
        n = clamp(self.replicas, ctx)
        return Decision(n, f"fixed at {n}", replace(ctx.state, current_replicas=n),
                        cause="fixed")


class OraclePolicy(_Policy):
    """Follows a schedule computed with the whole trace known; needs no metrics."""

    schedule: tuple[int, ...]
    bucket_s: float = Field(gt=0)
    start: float = 0.0

    def replicas_at(self, t: float) -> int:
        if not self.schedule:
            return 0
        i = int((t - self.start) // self.bucket_s)
        return self.schedule[max(0, min(len(self.schedule) - 1, i))]

    def __call__(self, ctx: PolicyContext) -> Decision:
        n = self.replicas_at(ctx.now)
        state = ctx.state
        new_state = replace(
            state,
            current_replicas=n,
            last_scale_up_at=ctx.now if n > state.current_replicas else state.last_scale_up_at,
            last_scale_down_at=ctx.now if n < state.current_replicas else state.last_scale_down_at,
        )
        return Decision(n, f"oracle schedule: {n} replicas", new_state, cause="schedule")

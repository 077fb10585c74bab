"""Tierserve's SLO policy: capacity model + short-horizon forecast + attainment feedback.

The recommendation is ``ceil(gain * (max(level, forecast) + z * spread) /
target_utilization)`` where

* ``level`` is recent demand in replica units (:func:`signals.demand`: token work against
  the sizing plan's per-replica capacity, or in-flight sequences against the concurrency
  that meets TPOT, whichever is larger), averaged over ``level_window_s``;
* ``forecast`` extrapolates the least-squares trend of demand over ``trend_window_s``
  by the cold start plus one interval (a replica asked for now serves only then), damped
  by half as in Holt's damped trend: a two-minute trend of bursty traffic overshoots;
* ``spread`` is the standard deviation of demand around its trend across level windows
  over the metrics window: a safety stock (inventory theory) for the demand that can arrive before a
  replica asked for now is ready; bursty traffic gets headroom, steady traffic none;
* ``gain`` is a slow integral term on observed attainment (from the TTFT/TPOT histogram
  deltas): it rises when the deployment misses its target while no capacity is starting
  and decays when half the error budget goes unused, correcting a sizing plan that is
  off. It is deliberately slow: misses come in bursts shorter than a cold start, and a
  fast integrator only adds capacity after the burst has passed.

Scale-down uses the deployment's stabilization window (the highest recommendation in
that window wins) and waits while a scale-up is still cold-starting, so a burst that
provoked a scale-up cannot be followed by a scale-down before the new capacity even ran.
"""

from __future__ import annotations

import math
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from tierserve.autoscaler.policy import signals
from tierserve.autoscaler.policy.common import finalize, hold, missing_or_stale
from tierserve.autoscaler.types import Decision, MetricSample, PolicyContext
from tierserve.core.tpot_tail import replicas_for_tpot_tail


class SloPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    target_utilization: float = Field(
        default=1.3,
        gt=0,
        le=2.0,
        description="share of the plan's capacity to use (>1: the plan is cautious)",
    )
    level_window_s: float = Field(default=30.0, gt=0)
    trend_window_s: float = Field(default=120.0, gt=0)
    trend_damping: float = Field(
        default=0.5, ge=0, le=1, description="share of the trend extrapolated (damped trend)"
    )
    interval_s: float = Field(default=10.0, gt=0, description="how often the policy runs")
    feedback_window_s: float = Field(default=300.0, gt=0)
    gain_step: float = Field(default=0.002, ge=0, description="gain change per decision")
    gain_min: float = Field(default=0.8, gt=0)
    gain_max: float = Field(default=1.5, gt=0)
    down_cooldown_s: float = Field(default=60.0, ge=0, description="between scale-downs")
    relax_above: float = Field(
        default=0.5, ge=0, le=1, description="unused share of the error budget to relax gain"
    )
    up_headroom: float = Field(
        default=0.0, ge=0, description="extra share added when scaling up, so a ramp is one step"
    )
    down_min_step: int = Field(default=2, ge=1, description="smallest scale-down worth doing")
    small_step_after_s: float = Field(
        default=600.0, ge=0,
        description="a smaller scale-down is allowed this long after the last change",
    )  # fmt: skip
    up_tolerance: float = Field(
        default=0.05, ge=0, description="need must exceed current by this share to scale up"
    )
    default_output_tokens: float = Field(default=256.0, gt=0)
    exponent: float = Field(default=4.0, gt=0, description="shape of predicted attainment")
    safety_z: float = Field(
        default=0.0, ge=0, description="headroom in std-devs of recent demand (safety stock)"
    )
    down_margin: float = Field(
        default=0.15, ge=0, description="share of need kept on scale-down (hysteresis band)"
    )
    burst_z: float = Field(
        default=3.0, ge=0,
        description="headroom in std-devs of the demand arriving while an answer decodes",
    )  # fmt: skip
    default_prompt_tokens: float = Field(default=1000.0, gt=0)
    down_safety_z: float | None = Field(
        default=1.0, ge=0, description="safety stock for scale-down (None: safety_z)"
    )
    tail_budget: float | None = Field(
        default=None, gt=0, le=1,
        description="share of the error budget prefill collisions may take (TPOT-tail "
        "floor, core.tpot_tail); None (default): no floor. Opt-in: it tracks the oracle "
        "on prefill-heavy traffic but asks about twice the need on conversation-like "
        "lengths (docs/autoscaler.md)",
    )  # fmt: skip

    def __call__(self, ctx: PolicyContext) -> Decision:
        stale = missing_or_stale(ctx)
        if stale is not None:
            return hold(ctx, stale)
        samples = ctx.window.samples
        ratio = signals.output_ratio(samples, self.default_output_tokens)
        level, forecast, trend = self._load(samples, ctx, ratio)
        spread = self._spread(samples, ctx, ratio)
        gain, observed = self._feedback(ctx)
        load = max(level, forecast)
        prompt = signals.prompt_ratio(samples, self.default_prompt_tokens)
        grain = signals.granularity_safety(load, ctx.capacity, prompt, ratio,
                                           ctx.slo.tpot_p95_ms / 1000)
        base = load + self.burst_z * grain + self.safety_z * spread
        tail = self._tail_floor(ctx, samples, prompt, ratio)
        raw = self._count(gain * max(base / self.target_utilization, tail),
                          ctx.state.current_replicas)
        raw = self._band(raw, ctx.state.current_replicas, gain, load + self.burst_z * grain,
                         spread, tail)
        floor = "" if self.tail_budget is None else f", TPOT-tail floor {tail}"
        reason = (
            f"demand {level:.2f} replicas (forecast {forecast:.2f} in "
            f"{ctx.limits.cold_start_s + self.interval_s:.0f}s, trend {trend * 60:+.2f}/min, "
            f"spread {spread:.2f}, burst headroom {self.burst_z * grain:.2f}{floor}), "
            f"gain {gain:.2f}, target util {self.target_utilization:.0%} -> {raw}"
        )
        if observed is not None:
            reason += f"; observed attainment {observed:.3f} vs {ctx.slo.target_attainment}"
        raw, why_not = self._down_guard(ctx, raw)
        inputs = {
            "demand_replicas": level, "forecast_replicas": forecast, "spread_replicas": spread,
            "trend_replicas_per_second": trend, "feedback_gain": gain,
            "output_tokens_per_request": ratio,
        }  # fmt: skip
        if observed is not None:  # too few requests: unknown, so absent
            inputs["feedback_attainment"] = observed
        memo = {**ctx.state.memo, "gain": gain}
        decision = finalize(ctx, raw, reason + why_not, inputs=inputs, memo=memo,
                            cause="scale_down_guard" if why_not else "demand")
        predicted = self.predict(ctx, base, decision.desired_replicas)
        return replace(
            decision,
            reason=f"{decision.reason}; predicted attainment {predicted:.3f}",
            predicted_attainment=predicted,
        )

    def _count(self, need: float, current: int) -> int:
        """Replicas for ``need``; a need a hair above the count is rounding noise, and a
        real scale-up may take ``up_headroom`` more so that a ramp is one step."""
        raw = math.ceil(round(need, 6))
        if raw > current and need <= current * (1 + self.up_tolerance):
            return current
        if raw > current:
            return math.ceil(round(need * (1 + self.up_headroom), 6))
        return raw

    def _tail_floor(self, ctx: PolicyContext, samples: tuple[MetricSample, ...],
                    prompt: float, ratio: float) -> int:
        """Replicas that keep TPOT misses from prefill collisions within ``tail_budget``
        of the error budget (:func:`tierserve.core.tpot_tail.replicas_for_tpot_tail`), at
        the level window's request rate and the window's answer-length shape; 0 where
        the model does not apply (no step cost known, one sequence at a time). The rate
        is not grown by the forecast: that asked for 15 replicas where a burst's minute
        needs 10, and cost 5-6% more GPU-hours on every trace for no attainment
        (docs/autoscaler.md)."""
        if self.tail_budget is None:
            return 0
        mix = ctx.capacity.prefill_mix(prompt, ratio, ctx.slo.tpot_p95_ms,
                                       signals.answer_quantiles(samples))
        if mix is None:
            return 0
        recent = self._level_samples(samples, ctx.now)
        rate = signals.mean([s.arrival_rate for s in recent])
        budget = self.tail_budget * (1 - ctx.slo.target_attainment)
        return replicas_for_tpot_tail(rate, mix, budget, cap=4 * ctx.limits.max_replicas)

    def _band(self, raw: int, current: int, gain: float, load: float, spread: float,
              tail: int) -> int:
        """Hysteresis: a scale-down must leave ``down_margin`` (and ``down_safety_z``
        std-devs) above the need, so the count does not go down only to come back up."""
        if raw >= current:
            return raw
        z = self.safety_z if self.down_safety_z is None else self.down_safety_z
        keep = (gain * max((load + z * spread) / self.target_utilization, tail)
                * (1 + self.down_margin))
        count = max(raw, math.ceil(round(keep, 6)))
        if 0 < current - count < self.down_min_step:
            # a step smaller than usual (allowed once settled) keeps twice the band: a
            # count at the edge of the need would otherwise go down and come back
            count = max(count, math.ceil(round(keep * (1 + self.down_margin), 6)))
        return min(current, count)

    def _down_guard(self, ctx: PolicyContext, raw: int) -> tuple[int, str]:
        """Scale-downs are where autoscalers flap: never cancel capacity that is still
        starting, and leave a cooldown between steps so each one is observed first."""
        state = ctx.state
        if raw >= state.current_replicas:
            return raw, ""
        if state.ready_replicas < state.current_replicas:
            return state.current_replicas, "; no scale-down while replicas are starting"
        if state.current_replicas - raw < self.down_min_step and not self._settled(ctx):
            return state.current_replicas, f"; scale-down below step {self.down_min_step}"
        last = state.last_scale_down_at
        if last is not None and ctx.now - last < self.down_cooldown_s:
            return state.current_replicas, f"; scale-down cooldown ({self.down_cooldown_s:.0f}s)"
        return raw, ""

    def _settled(self, ctx: PolicyContext) -> bool:
        """No change for ``small_step_after_s``: a one-replica excess that has lasted
        this long is real (without this, 2 replicas could never go back to 1)."""
        state = ctx.state
        changes = [t for t in (state.last_scale_up_at, state.last_scale_down_at) if t is not None]
        return not changes or ctx.now - max(changes) >= self.small_step_after_s

    def _load(
        self, samples: tuple[MetricSample, ...], ctx: PolicyContext, ratio: float
    ) -> tuple[float, float, float]:
        now = ctx.now
        recent = self._level_samples(samples, now)
        level = signals.mean([signals.demand(s, ctx.capacity, ratio) for s in recent])
        trend_samples = [s for s in samples if now - s.t <= self.trend_window_s]
        ts = [s.t for s in trend_samples]
        ys = [signals.demand(s, ctx.capacity, ratio) for s in trend_samples]
        # a trend fitted on a few seconds of a fresh window is noise, not a forecast
        span = ts[-1] - ts[0] if ts else 0.0
        trend = signals.slope(ts, ys) if span >= self.trend_window_s / 2 else 0.0
        horizon = ctx.limits.cold_start_s + self.interval_s
        # only extrapolate upwards: a falling trend is handled by the down window
        forecast = level + max(0.0, trend) * horizon * self.trend_damping
        return level, forecast, trend

    def _level_samples(self, samples: tuple[MetricSample, ...],
                       now: float) -> list[MetricSample]:
        """The level window's samples (the newest alone when none falls inside it)."""
        return [s for s in samples if now - s.t <= self.level_window_s] or [samples[-1]]

    def _spread(self, samples: tuple[MetricSample, ...], ctx: PolicyContext, ratio: float) -> float:
        """Std-dev of demand around its linear trend, averaged per level window over the
        whole metrics window: the variability a count set now must absorb until a new
        replica could help. Detrended, so a ramp counts once (in the forecast), not twice."""
        buckets: dict[int, list[tuple[float, float]]] = {}
        for s in samples:
            key = int((ctx.now - s.t) // self.level_window_s)
            buckets.setdefault(key, []).append((s.t, signals.demand(s, ctx.capacity, ratio)))
        if len(buckets) < 4:
            return 0.0
        ts = [signals.mean([t for t, _ in v]) for v in buckets.values()]
        ys = [signals.mean([y for _, y in v]) for v in buckets.values()]
        k, mt, my = signals.slope(ts, ys), signals.mean(ts), signals.mean(ys)
        resid = [y - (my + k * (t - mt)) for t, y in zip(ts, ys, strict=True)]
        return math.sqrt(sum(r * r for r in resid) / (len(resid) - 2))

    def _feedback(self, ctx: PolicyContext) -> tuple[float, float | None]:
        gain = float(ctx.state.memo.get("gain", 1.0))
        recent = ctx.window.since(ctx.now - self.feedback_window_s)
        observed = signals.observed_attainment(recent, ctx.slo)
        bounds = signals.attainment_bounds(recent, ctx.slo)
        if observed is None or bounds is None or observed[1] < 20:
            return gain, None  # too few requests to judge a 99% target
        lowest, highest, _ = bounds
        target = ctx.slo.target_attainment
        # anti-windup: misses while new capacity is still starting are lag, not a wrong
        # capacity model; integrating them would over-provision long after the burst
        settled = ctx.state.ready_replicas >= ctx.state.current_replicas
        # integral action with a dead band, on what the histograms prove: push capacity
        # up only when even the best reading misses the target (a target inside a coarse
        # bucket must not look like misses), hand it back only when even the worst
        # reading leaves half the error budget unused, and more slowly
        if highest < target and settled:
            gain += self.gain_step
        elif lowest >= 1 - (1 - target) * (1 - self.relax_above):
            gain -= self.gain_step / 2
        return min(self.gain_max, max(self.gain_min, gain)), observed[0]

    def predict(self, ctx: PolicyContext, demand: float, replicas: int) -> float:
        """Heuristic attainment at ``replicas`` for ``demand``: the target exactly at the
        target utilization, approaching 1 below it and falling fast above it."""
        if replicas <= 0:
            return 0.0 if demand > 0 else 1.0
        util = demand / (replicas * self.target_utilization)
        miss = (1 - ctx.slo.target_attainment) * float(util**self.exponent)
        return max(0.0, min(1.0, 1 - miss))

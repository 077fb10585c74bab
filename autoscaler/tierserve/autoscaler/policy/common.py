"""Rules every policy shares: hold on bad data, bounds, stabilization, scale to zero.

A policy computes a *raw* recommendation from metrics; :func:`finalize` turns it into
a decision that respects the deployment's limits. Keeping these rules in one place is
what makes the baselines comparable to ours: they differ only in the recommendation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierserve.autoscaler.types import Decision, PolicyContext, ScalerState

HOLD_CAUSES = ("no_metrics", "stale_metrics", "clock_skew")


@dataclass(frozen=True)
class Untrusted:
    """Why a window cannot be trusted: ``cause`` one of :data:`HOLD_CAUSES`."""

    cause: str
    message: str


def missing_or_stale(ctx: PolicyContext) -> Untrusted | None:
    """Why the window cannot be trusted, or None. Scaling on no data is how autoscalers
    scale a healthy deployment to its floor when Prometheus hiccups, so we hold instead."""
    samples = ctx.window.samples
    if not samples:
        return Untrusted("no_metrics", "no metrics in the window")
    age = ctx.now - samples[-1].t
    if age > ctx.limits.stale_after_s:
        return Untrusted("stale_metrics", f"newest metrics are {age:.0f}s old "
                         f"(> {ctx.limits.stale_after_s:.0f}s)")
    if age < -1.0:
        return Untrusted("clock_skew", f"newest metrics are {-age:.0f}s in the future "
                         "(clock skew)")
    return None


def hold(ctx: PolicyContext, why: Untrusted) -> Decision:
    state = ctx.state
    return Decision(state.current_replicas, f"hold: {why.message}", state, held=True,
                    cause=why.cause)


def clamp(n: int, ctx: PolicyContext) -> int:
    """Bound by max and by a floor of at least one: zero is only reached via idleness."""
    floor = max(ctx.limits.min_replicas, 1)
    return max(floor, min(ctx.limits.max_replicas, n))


def is_idle(ctx: PolicyContext) -> bool:
    newest = ctx.window.samples[-1]
    return newest.arrival_rate == 0 and newest.running == 0 and newest.waiting == 0


def stabilize(
    history: tuple[tuple[float, int], ...],
    now: float,
    raw: int,
    current: int,
    up_window_s: float,
    down_window_s: float,
) -> tuple[int, tuple[tuple[float, int], ...]]:
    """Kubernetes HPA's rule: scale up to the *lowest* recommendation of the up window,
    scale down to the *highest* of the down window, so a single dip or spike is ignored."""
    keep = max(up_window_s, down_window_s)
    covered = any(now - t >= down_window_s for t, _ in history)
    hist = (*tuple(h for h in history if now - h[0] <= keep), (now, raw))
    up_floor = min(r for t, r in hist if now - t <= up_window_s)
    down_ceiling = max(r for t, r in hist if now - t <= down_window_s)
    if not covered:
        # a controller that just started has not seen a whole window: the count it found
        # stands in for the history it lacks, so a restart never triggers a scale-down
        down_ceiling = max(down_ceiling, current)
    if raw > current:
        return max(current, min(raw, up_floor)), hist
    if raw < current:
        return min(current, max(raw, down_ceiling)), hist
    return current, hist


def _zero_rules(ctx: PolicyContext, desired: int, idle_since: float | None
                ) -> tuple[int, str, str]:
    """(count, reason, cause) of the scale-to-zero rules; an empty reason: they do not apply."""
    current, limits = ctx.state.current_replicas, ctx.limits
    if current == 0:
        # activation: the router holds the first request; waking must not wait for windows
        if idle_since is not None:
            return 0, "idle at zero", "idle_at_zero"
        return 1, "activate from zero", "activate_from_zero"
    idle_for = ctx.now - idle_since if idle_since is not None else 0.0
    after = limits.scale_to_zero_after_s
    # a replica still starting was asked for (a wake for a held request): never zero it
    starting = ctx.state.ready_replicas < current
    zero_ok = (after is not None and limits.min_replicas == 0 and idle_since is not None
               and not starting)
    if zero_ok and after is not None and idle_for >= after and current == 1:
        return 0, f"idle for {idle_for:.0f}s >= {after:.0f}s: scale to zero", "scale_to_zero"
    return desired, "", ""


def finalize(
    ctx: PolicyContext,
    raw: int,
    reason: str,
    *,
    up_window_s: float | None = None,
    down_window_s: float | None = None,
    predicted: float | None = None,
    inputs: Mapping[str, float] | None = None,
    memo: Mapping[str, float] | None = None,
    cause: str = "policy",
) -> Decision:
    """Clamp, stabilize, apply scale-to-zero (only ever from one) and record the change;
    ``cause`` is the policy's (a bound, stabilization or a zero rule overrides it)."""
    state, limits, now = ctx.state, ctx.limits, ctx.now
    up_w = limits.scale_up_stabilization_s if up_window_s is None else up_window_s
    down_w = limits.scale_down_stabilization_s if down_window_s is None else down_window_s
    bounded = clamp(raw, ctx)
    if bounded != raw:
        cause = "max_replicas" if bounded < raw else "min_replicas"
    desired, history = stabilize(
        state.history, now, bounded, max(state.current_replicas, 1), up_w, down_w
    )
    idle_since = None
    if is_idle(ctx):
        idle_since = state.idle_since if state.idle_since is not None else now
    desired, zero_reason, zero_cause = _zero_rules(ctx, clamp(desired, ctx), idle_since)
    if zero_reason:
        reason, cause = f"{zero_reason}; {reason}", zero_cause
    elif desired != bounded:
        reason, cause = f"{reason}; stabilized {bounded} -> {desired}", "stabilization"
    new_state = ScalerState(
        current_replicas=desired,
        ready_replicas=state.ready_replicas,
        last_scale_up_at=now if desired > state.current_replicas else state.last_scale_up_at,
        last_scale_down_at=now if desired < state.current_replicas else state.last_scale_down_at,
        idle_since=idle_since,
        history=history,
        memo=dict(memo if memo is not None else state.memo),
    )
    return Decision(desired, reason, new_state, predicted, dict(inputs or {}), cause=cause,
                    needed_replicas=raw)

"""The capacity model of one engine replica: the batch that meets a TPOT target, and what
a replica serves at it. Every figure of "how much does one replica do" comes from here.

A replica's decode step costs some time that grows with the running batch; the largest
batch whose step stays within the TPOT target (:func:`batch_meeting_tpot`) bounds what a
replica serves. Two step models feed it:

* the operator's roofline over the GPU catalog (:mod:`tierserve.core.sizing`), which
  writes the :class:`~tierserve.core.api.deployment.SizingPlan` to ``status.sizing``;
* a fitted engine profile (:class:`~tierserve.core.latency.LatencyProfile`), which the
  simulator runs (:func:`capacity_from_profile`).

The autoscaler's policies size with a :class:`ReplicaCapacity`. In the cluster it comes
from a deployment's ``status.sizing`` (:func:`capacity_from_plan`); in the simulator from
the profile it simulates (:func:`capacity_from_profile`). Both mappings are documented in
docs/autoscaler.md; they keep the figures the benchmarks there were run with.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from tierserve.core.api.deployment import SizingPlan
from tierserve.core.latency import LatencyProfile
from tierserve.core.tpot_tail import PrefillMix

# The operator sizes the batch whose step *reaches* the TPOT target; the policy treats its
# capacity as what a replica serves at a mean TPOT comfortably under it, so it keeps this
# share of the plan's batch and tokens/s.
PLAN_UTILIZATION = 0.8
NO_PREFILL_COST = 1e9  # prompt tokens/s for a plan that spends no time on prefill
# The simulator's capacity is taken where a replica's *mean* TPOT is this share of the
# p95 target, leaving room for the prefill chunks that share its steps.
PROFILE_TPOT_BUDGET = 0.7
MIN_USABLE_FRACTION = 0.05  # below this the fixed step cost leaves a replica no room


class ReplicaCapacity(BaseModel):
    """What one replica serves within the SLO, as the autoscaler's policies size with it.

    A replica's time goes to a fixed cost per decode step (streaming the weights), a
    marginal cost per generated token and a cost per prefilled prompt token. At the step
    rate the TPOT target implies, ``usable_fraction`` of its time is left for the token
    work, so ``demand = (gen/decode_tokens_per_s + prompt/prefill_tokens_per_s) /
    usable_fraction`` replicas.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrency: float = Field(gt=0, description="running sequences that still meet TPOT")
    decode_tokens_per_s: float = Field(gt=0, description="marginal generated tokens/s")
    prefill_tokens_per_s: float = Field(gt=0, description="prompt tokens/s one replica prefills")
    usable_fraction: float = Field(default=1.0, gt=0, le=1.0)
    decode_step_ms: float | None = Field(
        default=None, gt=0,
        description="one decode step at a small batch; None: unknown, no TPOT-tail floor",
    )  # fmt: skip

    def prefill_mix(self, prompt_tokens: float, output_tokens: float, tpot_ms: float,
                    answer_quantiles: tuple[float, ...] | None = None) -> PrefillMix | None:
        """The inputs of the TPOT-tail model (:mod:`tierserve.core.tpot_tail`) for this
        replica and request mix; None where prompts cannot slow a decode: the step is
        unknown, or the engine runs one sequence at a time (``max_concurrency`` 1,
        llama.cpp here), so a prompt waits for the answer instead of sharing its steps.
        ``answer_quantiles``: the observed answer lengths (:class:`PrefillMix`)."""
        if self.decode_step_ms is None or self.max_concurrency <= 1:
            return None
        return PrefillMix(prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                          step_ms=self.decode_step_ms,
                          prefill_ms_per_token=1000 / self.prefill_tokens_per_s,
                          tpot_ms=tpot_ms, answer_quantiles=answer_quantiles)


def batch_meeting_tpot(step_ms: Callable[[int], float], tpot_ms: float, *, max_seqs: int,
                       kv_seqs: int) -> int:
    """Largest batch, at most ``max_seqs`` and the ``kv_seqs`` the KV cache holds, whose
    decode step takes at most ``tpot_ms``; 0 when none does.

    ``step_ms`` must not decrease as the batch grows (both step models only add cost per
    sequence), which is what lets a binary search find the edge.
    """
    lo, hi = 0, max(0, min(max_seqs, kv_seqs))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if step_ms(mid) <= tpot_ms:
            lo = mid
        else:
            hi = mid - 1
    return lo


def capacity_from_plan(plan: SizingPlan, input_tokens: int) -> ReplicaCapacity:
    """The operator's sizing plan (``status.sizing``) as the policy's capacity.

    ``tokensPerSecondPerReplica`` is ``batch / step`` at the plan's batch, so it already
    pays the fixed step cost (``usable_fraction`` 1); the TTFT estimate is one prefill of
    ``input_tokens`` plus one decode step, which gives the prefill rate.
    """
    prefill_ms = plan.est_ttft_ms - plan.est_tpot_ms
    prefill = input_tokens / (prefill_ms / 1000) if prefill_ms > 0 else NO_PREFILL_COST
    return ReplicaCapacity(
        max_concurrency=max(1.0, plan.max_batch_per_replica * PLAN_UTILIZATION),
        decode_tokens_per_s=max(1e-3, plan.tokens_per_second_per_replica * PLAN_UTILIZATION),
        prefill_tokens_per_s=prefill,
        usable_fraction=1.0,
        decode_step_ms=plan.est_decode_step_ms,
    )


def capacity_from_profile(
    profile: LatencyProfile,
    tpot_p95_ms: float,
    *,
    prompt_tokens: float,
    output_tokens: float,
    tpot_budget: float = PROFILE_TPOT_BUDGET,
) -> ReplicaCapacity:
    """Capacity of one replica when its *mean* TPOT is ``tpot_budget`` of the p95 target.

    At that TPOT a replica runs ``1/T`` steps a second; each costs ``step_base_ms`` of
    weight streaming whatever the batch, so ``1 - step_base_ms/T`` of its time is left
    for per-token work: ``step_ms_per_seq`` (+ the quadratic term at half the maximum
    batch) per generated token and ``prefill_ms_per_token`` per prompt token. Prefill
    shares steps with decode (chunked prefill), which is why it eats into TPOT.
    """
    tpot_ms = tpot_p95_ms * tpot_budget
    usable = 1 - profile.step_base_ms / tpot_ms
    if usable <= MIN_USABLE_FRACTION:
        raise ValueError(
            f"TPOT target {tpot_p95_ms} ms is below what profile {profile.name!r} "
            f"can do (one step costs at least {profile.step_base_ms} ms)"
        )
    kv_seqs = int(profile.kv_cache_tokens // max(1.0, prompt_tokens + output_tokens))
    # A replica runs at least one sequence, whatever the target says.
    n_max = max(1, batch_meeting_tpot(lambda n: profile.step_ms(n, 0), tpot_ms,
                                      max_seqs=profile.max_num_seqs, kv_seqs=kv_seqs))
    per_token_ms = profile.step_ms_per_seq + profile.step_ms_per_seq2 * n_max / 2
    prefill = (1000 / profile.prefill_ms_per_token if profile.prefill_ms_per_token > 0
               else NO_PREFILL_COST)
    return ReplicaCapacity(
        max_concurrency=n_max,
        decode_tokens_per_s=1000 / per_token_ms,
        prefill_tokens_per_s=prefill,
        usable_fraction=usable,
        decode_step_ms=profile.step_ms(1, 0),
    )

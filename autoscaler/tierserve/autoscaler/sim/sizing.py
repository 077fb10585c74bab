"""Engine profiles for the simulator and a per-replica sizing plan derived from one.

``BENCH_PROFILES`` holds profiles the autoscaler benchmark needs that the engine's
calibrated table (``tierserve.core.profiles``) does not have yet. They are
*estimates*, not fits, and say so in their ``source``.

:func:`plan_from_profile` is the simulator's stand-in for the operator's sizing plan:
the concurrency at which a replica's decode step leaves room within the TPOT target for
prefill interference, and the token rates one replica sustains there.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierserve.autoscaler.types import SizingPlan, Slo
from tierserve.core.latency import LatencyProfile
from tierserve.core.profiles import PROFILES

BENCH_PROFILES: Mapping[str, LatencyProfile] = {
    p.name: p
    for p in (
        LatencyProfile(
            name="llama-3.1-70b-a100x2-est",
            model="meta-llama/Llama-3.1-70B-Instruct",
            gpu="2x A100-80GB (TP=2)",
            source="ESTIMATE for the autoscaler benchmark, not fitted: BF16 weights (140 GB) "
            "streamed per decode step at ~70% of 2x 2.0 TB/s gives ~40 ms; prefill at ~50% "
            "MFU of 2x 312 TFLOPS gives ~0.2 ms/token (140 GFLOP/token, 2048-token chunks); "
            "~16 GB left for KV cache at 320 KB/token gives ~50k tokens",
            prefill_ms_per_token=0.2,
            step_base_ms=40.0,
            step_ms_per_seq=0.5,
            step_ms_per_seq2=0.004,
            kv_cache_tokens=50_000,
            max_num_seqs=64,
            max_prefill_tokens_per_step=2048,
            max_model_len=16_384,
            cold_start_s=60.0,
        ),
    )
}


def get_sim_profile(name: str) -> LatencyProfile:
    """An engine profile by name: the engine's calibrated table first, then ours."""
    if name in PROFILES:
        return PROFILES[name]
    if name in BENCH_PROFILES:
        return BENCH_PROFILES[name]
    known = ", ".join([*PROFILES, *BENCH_PROFILES])
    raise ValueError(f"unknown engine profile {name!r}; known: {known}")


def plan_from_profile(
    profile: LatencyProfile,
    slo: Slo,
    *,
    prompt_tokens: float,
    output_tokens: float,
    tpot_budget: float = 0.7,
) -> SizingPlan:
    """Capacity of one replica when its *mean* TPOT is ``tpot_budget`` of the p95 target.

    At that TPOT a replica runs ``1/T`` steps a second; each costs ``step_base_ms`` of
    weight streaming whatever the batch, so ``1 - step_base_ms/T`` of its time is left
    for per-token work: ``step_ms_per_seq`` (+ the quadratic term at half the maximum
    batch) per generated token and ``prefill_ms_per_token`` per prompt token. Prefill
    shares steps with decode (chunked prefill), which is why it eats into TPOT.
    """
    tpot_ms = slo.tpot_p95_ms * tpot_budget
    usable = 1 - profile.step_base_ms / tpot_ms
    if usable <= 0.05:
        raise ValueError(
            f"TPOT target {slo.tpot_p95_ms} ms is below what profile {profile.name!r} "
            f"can do (one step costs at least {profile.step_base_ms} ms)"
        )
    kv_bound = int(profile.kv_cache_tokens // max(1.0, prompt_tokens + output_tokens))
    n_max = 1
    for n in range(1, max(1, min(profile.max_num_seqs, kv_bound)) + 1):
        if profile.step_ms(n, 0) <= tpot_ms:
            n_max = n
    per_token_ms = profile.step_ms_per_seq + profile.step_ms_per_seq2 * n_max / 2
    prefill = 1000 / profile.prefill_ms_per_token if profile.prefill_ms_per_token > 0 else 1e9
    return SizingPlan(
        max_concurrency=n_max,
        decode_tokens_per_s=1000 / per_token_ms,
        prefill_tokens_per_s=prefill,
        usable_fraction=usable,
    )

"""Engine profiles for the simulator.

``BENCH_PROFILES`` holds profiles the autoscaler benchmark needs that the engine's
calibrated table (``tierserve.core.profiles``) does not have yet. They are
*estimates*, not fits, and say so in their ``source``. What one replica of a profile
serves comes from the capacity model (:func:`tierserve.core.capacity.capacity_from_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping

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

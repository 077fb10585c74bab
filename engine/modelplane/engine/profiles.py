"""Latency profiles for the simulated engine, one per (model, GPU) pair.

Each profile cites the published measurement it was fitted to. Parameters are
*fitted*, so the engine run at the cited concurrency reproduces the cited TTFT and
inter-token latency (checked by tests within 15%).
"""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.engine.latency import LatencyProfile

# NOTE: initial values; calibrated against the cited tables by the engine tests.
PROFILES: Mapping[str, LatencyProfile] = {
    p.name: p
    for p in (
        LatencyProfile(
            name="llama-3.1-8b-h100",
            model="meta-llama/Llama-3.1-8B-Instruct",
            gpu="H100-SXM",
            source="NVIDIA NIM for LLMs benchmarking guide, Llama-3.1-8B-Instruct on 1x H100: "
            "concurrency 1 -> TTFT 10 ms / ITL 4.6 ms; 100 -> 120 ms / 7.6 ms; 250 -> 606 ms / 16 ms",
            prefill_ms_per_token=0.02,
            step_base_ms=4.58,
            step_ms_per_seq=0.0199,
            step_ms_per_seq2=1.03e-4,
            kv_cache_tokens=400_000,
            max_num_seqs=256,
            max_model_len=131_072,
        ),
    )
}


class UnknownProfile(KeyError):
    def __str__(self) -> str:
        return f"unknown engine profile {self.args[0]!r}; known: {', '.join(PROFILES)}"


def get_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None

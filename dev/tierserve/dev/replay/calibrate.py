"""Fit a latency profile of the real llama.cpp engine on this machine.

The same closed loop the cited GPU profiles are fitted to (``tierserve.dev.calibration``),
run for real: one client, one replica (llama.cpp serves one sequence at a time, so more
clients only queue), through the router and Ray Serve as the replay goes, with random
token-id prompts of several lengths and a fixed output (``ignore_eos``). Each length
gives a :class:`BenchmarkPoint` (mean TTFT, mean inter-token latency); the fit then runs
:func:`tierserve.dev.calibration.fit` from a one-sequence starting profile.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import aiohttp

from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.core.latency import LatencyProfile
from tierserve.core.profiles import BenchmarkPoint
from tierserve.dev.calibration import fit, worst_error
from tierserve.dev.replay.client import send_one

# llama.cpp: one sequence per replica; the whole context (2048 tokens) is its KV cache
# and prefill runs in one step. A lone sequence cannot tell a step's fixed cost from its
# per-sequence cost, so all of a decode step is per-sequence (step_base_ms 0): the
# capacity model then counts a replica's tokens/s as 1000 / step_ms_per_seq.
START = LatencyProfile(
    name="smollm2-135m-cpu1", model="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
    gpu="cpu (1 thread, llama.cpp)", source="fitted here", prefill_ms_per_token=5.0,
    step_base_ms=0.0, step_ms_per_seq=15.0, step_ms_per_seq2=0.0, kv_cache_tokens=2048,
    max_num_seqs=1, max_prefill_tokens_per_step=2048, max_model_len=2048)
FIT_FIELDS = ("prefill_ms_per_token", "step_ms_per_seq")


async def measure_point(base_url: str, model: str, prompt: int, output: int, rounds: int,
                        index0: int) -> BenchmarkPoint:
    """``rounds`` back-to-back requests (after one warm-up): mean TTFT and ITL."""
    url = base_url.rstrip("/") + "/completions"
    ttfts, itls = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(rounds + 1):
            t0 = time.monotonic()
            out = await send_one(session, url, model, TraceRequest(0.0, prompt, output),
                                 index0 + i, seed=7, t0=t0)
            if out.error or math.isnan(out.first_s):
                raise RuntimeError(f"calibration request failed: {out.error}")
            if i:  # the first one warms the replica
                ttfts.append(out.ttft_s * 1000)
                itls.append(out.tpot_s * 1000)
    return BenchmarkPoint(1, prompt, output, itl_ms=round(sum(itls) / len(itls), 2),
                          ttft_ms=round(sum(ttfts) / len(ttfts), 1), rounds=rounds)


async def measure(base_url: str, model: str, prompts: Sequence[int], output: int,
                  rounds: int) -> list[BenchmarkPoint]:
    return [await measure_point(base_url, model, p, output, rounds, 1000 * k)
            for k, p in enumerate(prompts)]


def fit_profile(points: Sequence[BenchmarkPoint], source: str) -> tuple[LatencyProfile, float]:
    """The fitted profile and its worst relative error over ``points``."""
    fitted = fit(dataclasses.replace(START, source=source), points, fields=FIT_FIELDS,
                 iterations=300)
    return fitted, worst_error(fitted, points)

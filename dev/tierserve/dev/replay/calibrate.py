"""Fit a latency profile of the real llama.cpp engine on this machine.

The same closed loop the cited GPU profiles are fitted to (``tierserve.dev.calibration``),
run for real: one client, one replica (llama.cpp serves one sequence at a time, so more
clients only queue), through the router and Ray Serve as the replay goes, with random
token-id prompts of several lengths and a fixed output (``ignore_eos``). Each length
gives a :class:`BenchmarkPoint` (mean TTFT, mean inter-token latency); the fit then runs
:func:`tierserve.dev.calibration.fit` from a one-sequence starting profile.
"""

from __future__ import annotations

import asyncio
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


async def _neighbour(session: aiohttp.ClientSession, url: str, model: str,
                     prompts: Sequence[int], output: int, stop: asyncio.Event, k: int) -> None:
    """Keeps another replica busy with the same requests, as the replay's load does."""
    i = 0
    while not stop.is_set():
        prompt = prompts[i % len(prompts)]
        await send_one(session, url, model, TraceRequest(0.0, prompt, output),
                       100_000 * (k + 1) + i, seed=11, t0=time.monotonic())
        i += 1


async def measure(base_url: str, model: str, prompts: Sequence[int], output: int,
                  rounds: int, neighbours: int = 0) -> list[BenchmarkPoint]:
    """``rounds`` back-to-back requests per prompt length (after one warm-up request),
    the lengths interleaved round by round so that a change in the machine's load (its
    cores are shared) reaches every point alike: mean TTFT and ITL per length. With
    ``neighbours`` closed-loop clients of the same requests running alongside (one per
    other replica), each replica decodes while the others do, as under the replay."""
    url = base_url.rstrip("/") + "/completions"
    ttfts: dict[int, list[float]] = {p: [] for p in prompts}
    itls: dict[int, list[float]] = {p: [] for p in prompts}
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        busy = [asyncio.create_task(_neighbour(session, url, model, prompts, output, stop, k))
                for k in range(neighbours)]
        try:
            await _rounds(session, url, model, prompts, output, rounds, ttfts, itls)
        finally:
            stop.set()
            await asyncio.gather(*busy, return_exceptions=True)
    return [BenchmarkPoint(1, p, output, itl_ms=round(sum(itls[p]) / rounds, 2),
                           ttft_ms=round(sum(ttfts[p]) / rounds, 1), rounds=rounds)
            for p in prompts]


async def _rounds(session: aiohttp.ClientSession, url: str, model: str,
                  prompts: Sequence[int], output: int, rounds: int,
                  ttfts: dict[int, list[float]], itls: dict[int, list[float]]) -> None:
    for i in range(rounds + 1):
        for k, prompt in enumerate(prompts):
            t0 = time.monotonic()
            out = await send_one(session, url, model, TraceRequest(0.0, prompt, output),
                                 1000 * k + i, seed=7, t0=t0)
            if out.error or math.isnan(out.first_s):
                raise RuntimeError(f"calibration request failed: {out.error}")
            if i:  # the first round warms the replica
                ttfts[prompt].append(out.ttft_s * 1000)
                itls[prompt].append(out.tpot_s * 1000)


def fit_profile(points: Sequence[BenchmarkPoint], source: str) -> tuple[LatencyProfile, float]:
    """The fitted profile and its worst relative error over ``points``."""
    fitted = fit(dataclasses.replace(START, source=source), points, fields=FIT_FIELDS,
                 iterations=300)
    return fitted, worst_error(fitted, points)

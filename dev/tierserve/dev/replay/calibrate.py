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
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

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
MAX_TAU_S = 60.0  # a correlation longer than a minute is load, not noise: refit instead


async def _neighbour(session: aiohttp.ClientSession, url: str, model: str,
                     prompts: Sequence[int], output: int, stop: asyncio.Event, k: int) -> None:
    """Keeps another replica busy with the same requests, as the replay's load does."""
    i = 0
    while not stop.is_set():
        prompt = prompts[i % len(prompts)]
        await send_one(session, url, model, TraceRequest(0.0, prompt, output),
                       100_000 * (k + 1) + i, seed=11, t0=time.monotonic())
        i += 1


@dataclass(frozen=True)
class Observation:
    """One calibration request: when it started, its prompt, its mean inter-token ms."""

    at_s: float
    prompt: int
    itl_ms: float


async def measure(base_url: str, model: str, prompts: Sequence[int], output: int,
                  rounds: int, neighbours: int = 0,
                  observed: list[Observation] | None = None) -> list[BenchmarkPoint]:
    """``rounds`` back-to-back requests per prompt length (after one warm-up request),
    the lengths interleaved round by round so that a change in the machine's load (its
    cores are shared) reaches every point alike: mean TTFT and ITL per length. With
    ``neighbours`` closed-loop clients of the same requests running alongside (one per
    other replica), each replica decodes while the others do, as under the replay.
    Each measured request is appended to ``observed`` (for :func:`fit_noise`)."""
    url = base_url.rstrip("/") + "/completions"
    ttfts: dict[int, list[float]] = {p: [] for p in prompts}
    itls: dict[int, list[float]] = {p: [] for p in prompts}
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        busy = [asyncio.create_task(_neighbour(session, url, model, prompts, output, stop, k))
                for k in range(neighbours)]
        try:
            await _rounds(session, url, model, prompts, output, rounds, ttfts, itls,
                          observed if observed is not None else [])
        finally:
            stop.set()
            await asyncio.gather(*busy, return_exceptions=True)
    return [BenchmarkPoint(1, p, output, itl_ms=round(sum(itls[p]) / rounds, 2),
                           ttft_ms=round(sum(ttfts[p]) / rounds, 1), rounds=rounds,
                           beside_busy=neighbours > 0)
            for p in prompts]


async def _rounds(session: aiohttp.ClientSession, url: str, model: str,
                  prompts: Sequence[int], output: int, rounds: int,
                  ttfts: dict[int, list[float]], itls: dict[int, list[float]],
                  observed: list[Observation]) -> None:
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
                observed.append(Observation(t0, prompt, out.tpot_s * 1000))


def fit_profile(points: Sequence[BenchmarkPoint], source: str) -> tuple[LatencyProfile, float]:
    """The fitted profile and its worst relative error over ``points``."""
    fitted = fit(dataclasses.replace(START, source=source), points, fields=FIT_FIELDS,
                 iterations=300)
    return fitted, worst_error(fitted, points)


def fit_noise(observed: Sequence[Observation], fitted: LatencyProfile) -> LatencyProfile:
    """``fitted`` with the host noise these requests show (:class:`HostNoise`).

    The residual of a request is log(its mean ITL / the model's); ``noise_sigma`` is
    their standard deviation around their mean (the fit already took the mean), and
    ``noise_tau_s`` comes from the correlation of consecutive requests' residuals at
    their spacing ``d``: ``rho = exp(-d / tau)``. A request's mean ITL averages the
    factor over the request, so this assumes ``tau`` at least that long: with rho <= 0
    (no correlation between neighbours) tau is set to one request's length (the spacing).
    """
    if len(observed) < 3:
        raise ValueError(f"fitting host noise needs >= 3 requests; got {len(observed)}")
    model_itl = fitted.step_ms(1, 0)
    res = [math.log(o.itl_ms / model_itl) for o in observed]
    centre = statistics.fmean(res)
    dev = [r - centre for r in res]
    sigma = statistics.pstdev(dev)
    gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(observed)]
    spacing = statistics.median(gaps)
    var = sum(d * d for d in dev)
    rho = sum(a * b for a, b in itertools.pairwise(dev)) / var if var else 0.0
    if rho <= 0:
        tau = spacing  # back to back, a request's length: correlated within one only
    elif rho < 1:
        tau = -spacing / math.log(rho)
    else:
        tau = MAX_TAU_S
    return dataclasses.replace(fitted, noise_sigma=round(sigma, 3),
                               noise_tau_s=round(min(tau, MAX_TAU_S), 2))

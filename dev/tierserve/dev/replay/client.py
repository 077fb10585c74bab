"""Open-loop replay of a trace against an OpenAI-compatible endpoint, streamed.

Request ``i`` is sent at ``start + arrival_s`` whatever happened to earlier ones (a slow
deployment gets more requests in flight, as in the simulator). Its prompt is exactly
``prompt_tokens`` token ids (a completions prompt given as ids), seeded per request and
different from the first token on, so llama.cpp's reuse of the previous request's
common prefix does not skip prefill (the simulator models none); ``ignore_eos`` makes the
output exactly ``output_tokens`` long. TTFT and TPOT are measured as the simulator and
the engine's ``vllm:time_per_output_token_seconds`` define them: first token minus due
time; (last token - first token) / (tokens - 1). The last token is the last chunk with
a choice, not the end of the stream: the usage chunk, ``[DONE]`` and the close behind it
cross ingress, proxy and router once more (5-15 ms here), which taken as decode time
inflated a two-token answer's TPOT by up to half and made short answers the TPOT tail.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from tierserve.autoscaler.sim.trace import TraceRequest

VOCAB_LO, VOCAB_HI = 100, 40_000  # ordinary token ids of SmolLM2's 49k vocabulary


@dataclass(frozen=True)
class Outcome:
    """One replayed request; NaN times when it failed (``error`` says why)."""

    due_s: float  # arrival, relative to the replay's start
    first_s: float
    end_s: float  # the last token's arrival (not the stream's close)
    tokens: int
    error: str = ""

    @property
    def ttft_s(self) -> float:
        return self.first_s - self.due_s

    @property
    def tpot_s(self) -> float:
        return (self.end_s - self.first_s) / (self.tokens - 1) if self.tokens > 1 else 0.0


def prompt_ids(index: int, n: int, seed: int) -> list[int]:
    rnd = random.Random(seed * 1_000_003 + index)
    return [rnd.randrange(VOCAB_LO, VOCAB_HI) for _ in range(n)]


async def send_one(session: aiohttp.ClientSession, url: str, model: str, req: TraceRequest,
                   index: int, seed: int, t0: float,
                   token_times: list[float] | None = None) -> Outcome:
    """One streamed request; each chunk with a choice (a token) is also timed into
    ``token_times`` when given."""
    body = {"model": model, "prompt": prompt_ids(index, req.prompt_tokens, seed),
            "max_tokens": req.output_tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    first, last, tokens = math.nan, math.nan, 0
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            text = (await resp.text())[:200]
            return Outcome(req.arrival_s, math.nan, math.nan, 0, f"{resp.status}: {text}")
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("choices"):
                last = time.monotonic() - t0
                if token_times is not None:
                    token_times.append(last)
                if math.isnan(first):
                    first = last
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    return Outcome(req.arrival_s, first, last, tokens)


async def replay(base_url: str, model: str, trace: Sequence[TraceRequest], *,
                 seed: int = 0, timeout_s: float = 600.0) -> list[Outcome]:
    """Send every request of ``trace`` when it is due; the outcomes in trace order."""
    url = base_url.rstrip("/") + "/completions"
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        t0 = time.monotonic()

        async def due(i: int, req: TraceRequest) -> Outcome:
            await asyncio.sleep(max(0.0, t0 + req.arrival_s - time.monotonic()))
            try:
                return await send_one(session, url, model, req, i, seed, t0)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return Outcome(req.arrival_s, math.nan, math.nan, 0, repr(exc))

        return list(await asyncio.gather(*(due(i, r) for i, r in enumerate(trace))))

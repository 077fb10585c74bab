"""The simulated engine as a :class:`~tierserve.engine.backend.Backend`.

Timing comes from :class:`~tierserve.engine.runner.EngineRunner` (one step-level model
of a continuous-batching engine); the text is deterministic filler, one word per token,
with no log-probabilities. Token counts are the request's estimates or hints
(:mod:`tierserve.engine.openai_api`), and the output runs to the hinted length capped
by ``max_tokens``: ``finish_reason`` is ``length`` when ``max_tokens`` ends it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator

from tierserve.core.latency import LatencyProfile, RequestTooLarge
from tierserve.engine.backend import Chunk, EngineState, Prepared, TokenOut
from tierserve.engine.openai_api import ApiError, GenRequest, check_context
from tierserve.engine.runner import EngineRunner

WORDS = (
    " the", " model", " plane", " serves", " tokens", " quickly", " and", " every",
    " request", " gets", " a", " fair", " share", " of", " the", " batch",
)  # fmt: skip


def filler(start: int, count: int) -> str:
    """Deterministic text for output tokens ``start .. start+count-1``."""
    return "".join(WORDS[(start + i) % len(WORDS)] for i in range(count))


class SimBackend:
    """One simulated engine replica."""

    def __init__(self, profile: LatencyProfile, cold_start_s: float | None = None) -> None:
        self.runner = EngineRunner(profile, cold_start_s)

    @property
    def ready(self) -> bool:
        return self.runner.ready

    @property
    def max_model_len(self) -> int:
        return self.runner.profile.max_model_len

    def load(self) -> None:
        """The cold start, spent now (blocking) instead of after ``start``."""
        time.sleep(self.runner.cold_start_s)
        self.runner.cold_start_s = 0.0

    async def start(self) -> None:
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    def prepare(self, req: GenRequest) -> Prepared:
        check_context(req.prompt_tokens, req.output_tokens, self.max_model_len,
                      req.max_tokens is not None)
        try:
            self.runner.check(req.prompt_tokens, req.output_tokens)
        except RequestTooLarge as exc:
            raise ApiError(400, str(exc), "max_tokens", "context_length_exceeded") from None
        return Prepared(req, req.prompt_tokens, req.output_tokens)

    async def generate(self, prepared: Prepared) -> AsyncGenerator[Chunk, None]:
        out = prepared.max_tokens
        generated = 0
        gen = self.runner.generate(prepared.prompt_tokens, out)
        async with contextlib.aclosing(gen) as steps:
            async for n in steps:
                words = [filler(generated + i, 1) for i in range(n)]
                generated += n
                finish = prepared.req.finish_reason if generated >= out else None
                yield Chunk("".join(words), tuple(TokenOut(w) for w in words), finish)

    def state(self) -> EngineState:
        core = self.runner.core
        return EngineState(core.num_running, core.num_waiting, core.kv_usage)

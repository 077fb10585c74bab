"""The one interface between the serving code and an engine: :class:`Backend`.

The aiohttp server (:mod:`tierserve.engine.server`), the Ray Serve application
(:mod:`tierserve.engine.serve_app`) and the Triton model
(:mod:`tierserve.engine.triton_model`) drive a backend through this protocol and never
branch on which engine it is. Two implement it: the simulated engine
(:class:`tierserve.engine.sim_backend.SimBackend`) and llama.cpp
(:class:`tierserve.engine.llamacpp.LlamaCppBackend`).

A request goes ``prepare`` (count the prompt with the engine's own tokenizer, check it
fits; raises :class:`~tierserve.engine.openai_api.ApiError`) and then ``generate``, an
async iterator of :class:`Chunk`: the visible text added since the last chunk, the
tokens sampled (with their log-probabilities when the request asked), and, on the last
chunk, the finish reason. Closing the iterator early aborts the request. Everything
here is plain data, so it crosses Ray and process boundaries as is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol

from tierserve.engine.openai_api import GenRequest


class NotReady(RuntimeError):
    """The engine is still starting (cold start, model load) or has stopped."""


@dataclass(frozen=True)
class TokenOut:
    """One sampled token: its own text (for log-probabilities) and, when asked, its
    log-probability and the most likely alternatives at its position."""

    token: str
    logprob: float | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """What one engine step adds to a request's output."""

    text: str
    tokens: tuple[TokenOut, ...]
    finish_reason: str | None = None  # set on the last chunk: "stop" or "length"


def merge(chunks: list[Chunk]) -> Chunk:
    """Several chunks as one (stream batching), finishing as the last one does."""
    return Chunk("".join(c.text for c in chunks), tuple(t for c in chunks for t in c.tokens),
                 chunks[-1].finish_reason if chunks else None)


def finish_reason(chunks: list[Chunk]) -> str:
    """How a finished request ended (``stop`` when no chunk says)."""
    return next((c.finish_reason for c in reversed(chunks) if c.finish_reason), "stop")


@dataclass(frozen=True)
class Prepared:
    """A request the engine accepted: real prompt length, output limit, engine input."""

    req: GenRequest
    prompt_tokens: int
    max_tokens: int
    token_ids: tuple[int, ...] = field(default=(), repr=False)  # llama.cpp: the prompt


@dataclass(frozen=True)
class EngineState:
    """What the queue and KV gauges read (summed or averaged over replicas)."""

    running: int
    waiting: int
    kv_usage: float  # 0..1


class Backend(Protocol):
    """An engine replica as the serving code sees it. Use from one event loop."""

    @property
    def ready(self) -> bool: ...

    @property
    def max_model_len(self) -> int: ...

    def load(self) -> None:
        """Blocking: do the slow part of starting (loading the model, a cold start) now.
        For hosts whose replica constructor is the readiness gate (Ray Serve, Triton)."""

    async def start(self) -> None:
        """Begin loading if ``load`` did not (returns at once); ``ready`` tells when done."""

    async def stop(self) -> None: ...

    def prepare(self, req: GenRequest) -> Prepared:
        """Tokenize and check ``req``; raises ``ApiError`` (4xx) when it cannot run."""

    def generate(self, prepared: Prepared) -> AsyncGenerator[Chunk, None]:
        """The output chunks; raises :class:`NotReady`, or ``RuntimeError`` when the
        engine fails underneath. Closing the iterator aborts the request."""

    def state(self) -> EngineState: ...

"""How an engine times one request, and the vLLM histogram buckets it records into.

:class:`RequestTimer` observes one request as its tokens reach the server:
``vllm:time_to_first_token_seconds`` at the first token,
``vllm:inter_token_latency_seconds`` once per later token (as vLLM does; tokens that
arrive together share the interval evenly), and at the end the end-to-end latency and
``vllm:time_per_output_token_seconds``, which here stays the request's mean
inter-token interval (observed once per request), and ``vllm:request_generation_tokens``,
the answer's length (the SLO autoscaler reads the shape of that distribution). The
token counters move when vLLM's do: the prompt with the first token (its prefill has
run), generated tokens as they arrive. A
rate of prompt tokens counted at the end instead would lag the arriving work by each
request's lifetime, and the SLO autoscaler reads that rate as demand. It records into any
:class:`RequestMetrics`: the prometheus_client families of
:class:`~tierserve.engine.metrics.EngineMetrics`, or Triton's custom metrics
(:mod:`~tierserve.engine.triton_metrics`). Standard library only, so the Triton
Python-backend model needs no metrics client of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

# vLLM's buckets, with finer low ends for fast GPUs (H100 ITL is ~5 ms).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
TPOT_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)  # fmt: skip
E2E_BUCKETS = (0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
               40.0, 50.0, 60.0, 120.0, 240.0)  # fmt: skip


class _Observes(Protocol):
    def observe(self, amount: float) -> None: ...


class _Counts(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class RequestMetrics(Protocol):
    """What :class:`RequestTimer` records into: ``EngineMetrics``, or the same
    families on another registry (Triton's custom metrics, ``triton_metrics``)."""

    @property
    def ttft(self) -> _Observes: ...
    @property
    def itl(self) -> _Observes: ...
    @property
    def tpot(self) -> _Observes: ...
    @property
    def e2e(self) -> _Observes: ...
    @property
    def prompt_tokens(self) -> _Counts: ...
    @property
    def generation_tokens(self) -> _Counts: ...
    @property
    def answer_tokens(self) -> _Observes: ...
    def request_succeeded(self, reason: str) -> None: ...


class RequestTimer:
    """Latency of one request as its tokens arrive (``clock``: seconds, monotonic)."""

    def __init__(self, metrics: RequestMetrics | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.start = clock()
        self.first: float | None = None
        self.last = self.start
        self.generated = 0
        self.prompt_counted = False

    def tokens(self, n: int, at: float | None = None, *, prompt_tokens: int = 0) -> None:
        """``n`` tokens arrived now (or at ``at``, on this timer's clock); the request's
        ``prompt_tokens`` are counted with its first token (later calls ignore them)."""
        if n <= 0:
            return
        now = self.clock() if at is None else at
        m = self.metrics
        if self.first is None:
            self.first = now
            gaps = [0.0] * (n - 1)  # tokens that came with the first one
            if m is not None:
                m.ttft.observe(now - self.start)
                self._count_prompt(prompt_tokens)
        else:
            gaps = [(now - self.last) / n] * n
        if m is not None:
            for gap in gaps:
                m.itl.observe(gap)
            m.generation_tokens.inc(n)
        self.last = now
        self.generated += n

    def _count_prompt(self, prompt_tokens: int) -> None:
        if self.metrics is not None and not self.prompt_counted:
            self.metrics.prompt_tokens.inc(prompt_tokens)
            self.prompt_counted = True

    def finished(self, reason: str, prompt_tokens: int) -> None:
        """The request ran to its end: e2e, the mean TPOT, and the prompt if no token
        counted it (a request that ended before its first token)."""
        m = self.metrics
        if m is None:
            return
        end = self.clock()
        first = self.first if self.first is not None else end
        self._count_prompt(prompt_tokens)
        m.e2e.observe(end - self.start)
        m.answer_tokens.observe(self.generated)
        if self.generated > 1:
            m.tpot.observe((self.last - first) / (self.generated - 1))
        m.request_succeeded(reason)

"""The demo's traffic: closed-loop streaming chat clients through the router, in phases.

A :class:`DemoPlan` is a sequence of :class:`Phase` (a name, a duration, a number of
clients) over the route models to mix. :func:`drive` runs it with the official ``openai``
client: each client sends one streamed chat completion (usage included, bounded
``max_tokens``, a client-side timeout) after another until its phase ends, then stops;
a request in flight at the end finishes (or times out) and still counts for its phase.
Phases follow a fixed schedule from the start, so the idle tail (no clients) begins on
time whatever the last burst requests did.

Requests go round-robin over the plan's route models, with the short questions of
``tests/data/tier_questions.jsonl`` and varied ``x-user-id`` headers (the A/B route's
sticky header: several users, so both variants get traffic). Every request ends as one
:class:`DemoRecord`: a failure (an HTTP error, a broken or incomplete stream, a timeout)
is recorded with its error, never dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tierserve.dev.live_timeline import RequestRecord

USER_HEADER = "x-user-id"
USERS = 20  # distinct sticky users: enough that every A/B variant gets some


@dataclass(frozen=True)
class Phase:
    """``clients`` closed-loop streaming clients for ``duration_s`` (0 clients: idle)."""

    name: str
    duration_s: float
    clients: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"a phase needs a name, got {self.name!r}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"phase {self.name!r}: duration_s must be a positive number of "
                             f"seconds, got {self.duration_s!r}")
        if isinstance(self.clients, bool) or not isinstance(self.clients, int) \
                or self.clients < 0:
            raise ValueError(f"phase {self.name!r}: clients must be an integer >= 0, got "
                             f"{self.clients!r}")


@dataclass(frozen=True)
class DemoPlan:
    """The phases to run and the route models (OpenAI ``model`` names) to mix.

    ``prompts`` empty means the question set; ``timeout_s`` bounds each request from
    send to the stream's end; after a failure a client waits ``failure_pause_s`` before
    its next request, so a route that fails at once is not hammered in a tight loop
    (on a small machine that would take the CPU the engines need)."""

    phases: tuple[Phase, ...]
    routes: tuple[str, ...]
    max_tokens: int = 32
    timeout_s: float = 60.0
    prompts: tuple[str, ...] = ()
    failure_pause_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a demo plan needs at least one phase")
        if any(p.clients for p in self.phases) and not self.routes:
            raise ValueError("a demo plan with clients needs at least one route model, got "
                             f"routes={self.routes!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {self.timeout_s!r}")
        if not (math.isfinite(self.failure_pause_s) and self.failure_pause_s >= 0):
            raise ValueError("failure_pause_s must be a number >= 0, got "
                             f"{self.failure_pause_s!r}")

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @classmethod
    def default(cls, scale_down_window_s: float = 30.0,
                routes: tuple[str, ...] = ("qa", "chat")) -> DemoPlan:
        """``make demo``: steady 60 s at 1 client, a 120 s burst at 3 clients (one
        llama.cpp replica serves one sequence at a time, so requests queue and TTFT
        breaks its SLO until a second replica serves), then an idle tail of the
        deployments' scale-down window (30 s in examples/ray-smollm2-cpu.yaml) plus a
        minute (the autoscaler's interval and the metrics' lag) so the count goes back
        down."""
        return cls((Phase("steady", 60, 1), Phase("burst", 120, 3),
                    Phase("idle", scale_down_window_s + 60, 0)), routes)

    @classmethod
    def short(cls, scale_down_window_s: float = 30.0,
              routes: tuple[str, ...] = ("qa", "chat")) -> DemoPlan:
        """The e2e test's plan: the same phases, shorter."""
        return cls((Phase("steady", 10, 1), Phase("burst", 60, 3),
                    Phase("idle", scale_down_window_s + 45, 0)), routes)


@dataclass(frozen=True)
class DemoRecord:
    """One request as the client saw it (monotonic seconds); ``first_token`` is None when
    no content arrived, ``error`` says why a request failed."""

    phase: str
    model: str
    start: float
    first_token: float | None
    end: float
    tokens: int
    ok: bool
    error: str | None

    def timing(self) -> RequestRecord | None:
        """The latency record of an answered request that streamed content, else None."""
        if not self.ok or self.first_token is None:
            return None
        return RequestRecord(self.start, self.first_token, self.end, self.tokens)


@dataclass(frozen=True)
class DemoRequest:
    """What the n-th request of a run sends."""

    model: str
    prompt: str
    user: str


def request_for(routes: tuple[str, ...], prompts: tuple[str, ...], n: int) -> DemoRequest:
    """Round-robin over the route models; prompts and users cycle at other strides so each
    model sees every prompt and many users."""
    return DemoRequest(routes[n % len(routes)], prompts[(n // len(routes)) % len(prompts)],
                       f"demo-user-{n % USERS}")


def default_prompts() -> tuple[str, ...]:
    from tierserve.dev.tierbench.questions import load_questions

    return tuple(q.question for q in load_questions())


class IncompleteStream(Exception):
    """The stream ended cleanly but without a finish_reason: a truncated answer."""


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


async def stream_one(client: Any, plan: DemoPlan, phase: str, req: DemoRequest) -> DemoRecord:
    """Send ``req`` as a streamed chat completion; its record, ok or failed."""
    start = time.monotonic()
    first: float | None = None
    counted, usage, finished = 0, None, False
    try:
        async with asyncio.timeout(plan.timeout_s):
            stream = await client.chat.completions.create(
                model=req.model, messages=[{"role": "user", "content": req.prompt}],
                max_tokens=plan.max_tokens, temperature=0, stream=True,
                stream_options={"include_usage": True},
                extra_headers={USER_HEADER: req.user})
            async with stream:  # closes the response on a timeout or error too
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            counted += 1
                            first = time.monotonic() if first is None else first
                        finished = finished or choice.finish_reason is not None
                    if chunk.usage is not None:
                        usage = chunk.usage.completion_tokens
        if not finished:
            raise IncompleteStream("the stream ended without a finish_reason")
    except Exception as exc:  # any failure is a record with its error, never dropped
        return DemoRecord(phase, req.model, start, first, time.monotonic(),
                          usage or counted, False, _describe(exc))
    return DemoRecord(phase, req.model, start, first, time.monotonic(),
                      counted if usage is None else usage, True, None)


Send = Callable[[str, int], Awaitable[DemoRecord]]


async def run_phases(plan: DemoPlan, send: Send, keep: Callable[[DemoRecord], None]) -> None:
    """Run the phases on a fixed schedule: each phase's clients call ``send(phase, n)``
    (``n`` counts requests over the run) until the phase's end; ``keep`` gets every
    record. Returns when the last phase is over and every request has finished."""
    counter = itertools.count()
    async with asyncio.TaskGroup() as group:
        deadline = time.monotonic()
        for phase in plan.phases:
            deadline += phase.duration_s
            for _ in range(phase.clients):
                group.create_task(_client(phase.name, deadline, plan.failure_pause_s,
                                          counter, send, keep))
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def _client(phase: str, deadline: float, pause_s: float, counter: Iterator[int],
                  send: Send, keep: Callable[[DemoRecord], None]) -> None:
    while time.monotonic() < deadline:
        record = await send(phase, next(counter))
        keep(record)
        if not record.ok:
            await asyncio.sleep(max(0.0, min(pause_s, deadline - time.monotonic())))


def _v1(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


async def drive(base_url: str, api_key: str | None, plan: DemoPlan,
                on_record: Callable[[DemoRecord], None], *,
                on_send: Callable[[], None] | None = None) -> list[DemoRecord]:
    """Run ``plan`` against the router at ``base_url`` (its root; ``/v1`` is added unless
    there). ``on_record`` gets each record as it completes and ``on_send`` (if given) is
    called as each request is sent. Returns every record, in completion order."""
    from openai import AsyncOpenAI

    prompts = plan.prompts or default_prompts()
    records: list[DemoRecord] = []
    client = AsyncOpenAI(base_url=_v1(base_url), api_key=api_key or "unused",
                         max_retries=0, timeout=plan.timeout_s)

    async def send(phase: str, n: int) -> DemoRecord:
        if on_send is not None:
            on_send()
        return await stream_one(client, plan, phase, request_for(plan.routes, prompts, n))

    def keep(record: DemoRecord) -> None:
        records.append(record)
        on_record(record)

    try:
        await run_phases(plan, send, keep)
    finally:
        await client.close()
    return records

"""Runs :class:`~tierserve.core.latency.EngineCore` in real time on an asyncio loop.

One task per engine calls :meth:`EngineCore.step` and sleeps for the step's duration
against a monotonic deadline (``deadline += duration``), so step durations do not
accumulate scheduling error. Tokens of a step become visible when its deadline
passes and go to per-request queues; a consumer that goes away aborts its request,
which frees its batch slot and KV reservation in the core.

If the host falls more than :data:`MAX_LAG_S` behind (an overloaded CPU), the
deadline is reset to now: the engine then runs slower than its profile rather than
delivering a burst of late tokens.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from tierserve.core.latency import EngineCore, LatencyProfile, SeqRequest, host_noise
from tierserve.engine.backend import NotReady

MAX_LAG_S = 0.25


@dataclass
class _Stream:
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)


class EngineRunner:
    """Real-time driver of one engine replica. Create and use inside one event loop."""

    def __init__(
        self,
        profile: LatencyProfile,
        cold_start_s: float | None = None,
    ) -> None:
        self.profile = profile
        self.core = EngineCore(profile)
        self.noise = host_noise(profile)  # the profile's host contention, as in the sim
        self.cold_start_s = profile.cold_start_s if cold_start_s is None else cold_start_s
        self.ready = False
        self._streams: dict[str, _Stream] = {}
        self._ids = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"engine-{self.profile.name}")

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for stream in self._streams.values():
            stream.queue.put_nowait(-1)
        self._streams.clear()

    def check(self, prompt_tokens: int, output_tokens: int) -> None:
        """Raise (``RequestTooLarge``) when the request can never run on this engine."""
        self.core.check(prompt_tokens, output_tokens)

    async def generate(self, prompt_tokens: int, output_tokens: int) -> AsyncGenerator[int, None]:
        """Yield the number of new tokens at each step until ``output_tokens`` are out.

        Raises :class:`NotReady` before the cold start is over and ``RuntimeError`` if
        the engine stops underneath. Closing the generator early aborts the request.
        """
        if not self.ready:
            raise NotReady(f"engine {self.profile.name} is not ready")
        rid = f"req-{next(self._ids)}"
        stream = _Stream()
        self.core.submit(SeqRequest(rid, prompt_tokens, output_tokens))
        self._streams[rid] = stream
        self._wake.set()
        generated = 0
        try:
            while generated < output_tokens:
                n = await stream.queue.get()
                if n < 0:
                    raise RuntimeError("engine stopped")
                generated += n
                yield n
        finally:
            if self._streams.pop(rid, None) is not None and generated < output_tokens:
                self.core.abort(rid)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self.cold_start_s > 0:
            await asyncio.sleep(self.cold_start_s)
        self.ready = True
        deadline = loop.time()
        while True:
            if not self.core.has_work():
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
            out = self.core.step()
            deadline += out.duration_s * self.noise.factor(loop.time())
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                if delay < -MAX_LAG_S:
                    deadline = loop.time()
                await asyncio.sleep(0)
            for rid in out.token_ids:
                stream = self._streams.get(rid)
                if stream is not None:
                    stream.queue.put_nowait(1)

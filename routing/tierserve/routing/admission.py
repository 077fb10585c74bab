"""Admission control: a bounded FIFO queue per deployment and the scale-from-zero hold.

The queue bounds memory and latency under overload: beyond ``max_queue`` waiting
requests the router answers 429 with ``Retry-After`` at once instead of letting every
client time out. The hold parks requests for a deployment with no ready replica, tells
the autoscaler once (through the injected :class:`ScaleSignal`), and releases them the
moment a configuration with a ready replica is applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from tierserve.routing.errors import queue_full, unavailable

log = logging.getLogger(__name__)


class ScaleSignal(Protocol):
    """How the router asks for a deployment to be scaled up from zero."""

    async def wake(self, deployment: str) -> None: ...


class NoScaleSignal:
    """Default: nobody to tell (local use); held requests wait for a config change."""

    async def wake(self, deployment: str) -> None:
        log.info("deployment %s has no ready replica; holding requests", deployment)


class Gate:
    """In-flight limit with a bounded FIFO wait queue."""

    def __init__(self) -> None:
        self.inflight = 0
        self.capacity: int | None = None
        self.max_queue = 0
        self.queue_timeout_s = 30.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def configure(self, capacity: int | None, max_queue: int, timeout_s: float) -> None:
        self.capacity, self.max_queue, self.queue_timeout_s = capacity, max_queue, timeout_s
        self._wake()

    async def acquire(self) -> None:
        if self.capacity is None or (self.inflight < self.capacity and not self._waiters):
            self.inflight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise queue_full("deployment queue is full", retry_after_s=1.0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, self.queue_timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done() and not fut.cancelled():
                if isinstance(exc, TimeoutError):
                    return  # granted at the deadline: we hold the slot
                self.release()
                raise
            if fut in self._waiters:
                self._waiters.remove(fut)
            if isinstance(exc, TimeoutError):
                raise queue_full("timed out waiting in the deployment queue", 1.0) from None
            raise

    def release(self) -> None:
        self.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and (self.capacity is None or self.inflight < self.capacity):
            fut = self._waiters.popleft()
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)


class Hold:
    """Scale-from-zero: park requests until a replica is ready (bounded count and time)."""

    def __init__(self, deployment: str, signal: ScaleSignal) -> None:
        self._deployment = deployment
        self._signal = signal
        self.ready = asyncio.Event()
        self.held = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def set_ready(self, ready: bool) -> None:
        if ready:
            self.ready.set()
        else:
            self.ready.clear()

    async def wait(self, *, enabled: bool, max_held: int, timeout_s: float) -> None:
        if self.ready.is_set():
            return
        if not enabled:
            raise unavailable(f"deployment {self._deployment} has no ready replica")
        if self.held >= max_held:
            raise unavailable(f"deployment {self._deployment} is scaling up; hold is full", 5.0)
        self.held += 1
        if self.held == 1:
            self._signal_once()
        try:
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        except TimeoutError:
            raise unavailable(f"deployment {self._deployment} did not become ready in time",
                              5.0) from None
        finally:
            self.held -= 1

    def _signal_once(self) -> None:
        # Fire and forget: a slow autoscaler must not delay the hold's own timeout.
        task = asyncio.get_running_loop().create_task(self._signal_safely())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _signal_safely(self) -> None:
        try:
            await self._signal.wake(self._deployment)
        except Exception:  # the signal is advisory; never fail requests over it
            log.exception("scale-up signal for %s failed", self._deployment)


"""A keyed work queue with per-key exclusivity and exponential backoff.

Watch events only *enqueue keys*; workers reconcile whole objects (level-triggered).
Properties that make the operator reliable:

* a key is queued at most once however many events arrive (dedup);
* a key is never processed by two workers at once; events during processing re-queue it;
* a failing key backs off exponentially (``base * 2**n`` capped) without blocking others;
* ``forget`` resets the backoff after a success.

Each key's wait (queued -> taken by a worker, from its first ``add`` while queued) goes
to ``on_wait``, on the injected monotonic clock: the operator's metrics bind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
log = logging.getLogger("tierserve.operator")


class WorkQueue(Generic[K]):
    def __init__(self, base_delay: float = 0.5, max_delay: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: dict[K, float] = {}  # key -> when it was queued
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self.base_delay, self.max_delay = base_delay, max_delay
        self._clock = clock
        self.on_wait: Callable[[float], None] = lambda _seconds: None

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)  # re-run after the current pass
            return
        if key not in self._queued:
            self._queued[key] = self._clock()
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: K) -> float:
        """Schedule a retry with backoff; returns the delay chosen."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = float(min(self.max_delay, self.base_delay * (2.0**n)))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: cancel pending retries."""
        self.forget(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        return bool(self._queued or self._active)

    async def _next(self) -> K:
        key = await self._queue.get()
        since = self._queued.pop(key)
        self._active.add(key)
        self.on_wait(self._clock() - since)
        return key

    def _done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    async def run_worker(self, handle: Callable[[K], Awaitable[None]]) -> None:
        """Process keys forever. ``handle`` owns error handling (retry/forget); an
        exception that still escapes is logged and retried, never kills the worker."""
        while True:
            key = await self._next()
            try:
                await handle(key)
            except Exception:
                log.exception("handler crashed for %r; retry in %.1fs", key, self.retry(key))
            finally:
                self._done(key)

    async def run(self, handle: Callable[[K], Awaitable[None]], workers: int) -> None:
        tasks = [asyncio.create_task(self.run_worker(handle)) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

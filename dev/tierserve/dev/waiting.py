"""Wait until a condition holds: the one polling helper for tests and dev tooling.

Nothing here sleeps-and-hopes: a wait polls the condition it needs until it is true or
a deadline passes, and the limit_s names what was awaited (with the last error the
check raised, if any). ``wait_until`` blocks the calling thread (subprocesses, the dev
cluster, e2e tests); ``wait_until_async`` yields to the running event loop between polls
and also accepts a check that returns an awaitable.

An ``OSError`` from the check (a refused connection, a missing pid file) counts as "not
yet": that is what a server that is still starting looks like. Other exceptions propagate
at once, so a broken check fails fast instead of timing out.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["WaitTimeout", "wait_until", "wait_until_async"]


class WaitTimeout(TimeoutError):
    """A condition did not become true in time; the message says what was awaited."""


class _Deadline:
    """When a wait gives up, and what to say then."""

    def __init__(self, limit_s: float, what: str) -> None:
        if limit_s <= 0:
            raise ValueError(f"limit_s must be positive, got {limit_s} (waiting for {what})")
        self.limit_s, self.what = limit_s, what
        self.at = time.monotonic() + limit_s
        self.last_error: OSError | None = None

    def expire_if_due(self) -> None:
        if time.monotonic() < self.at:
            return
        why = f" (last error: {self.last_error!r})" if self.last_error is not None else ""
        raise WaitTimeout(f"timed out after {self.limit_s:g}s waiting for {self.what}{why}")


def wait_until(check: Callable[[], bool], limit_s: float, what: str, *,
               interval: float = 0.2) -> None:
    """Poll ``check`` every ``interval`` s until true; :class:`WaitTimeout` after ``limit_s`` s."""
    deadline = _Deadline(limit_s, what)
    while True:
        try:
            if check():
                return
        except OSError as exc:
            deadline.last_error = exc
        deadline.expire_if_due()
        time.sleep(interval)


async def wait_until_async(check: Callable[[], bool | Awaitable[bool]], limit_s: float,
                           what: str, *, interval: float = 0.01) -> None:
    """Like :func:`wait_until` in the running loop; ``check`` may return an awaitable."""
    deadline = _Deadline(limit_s, what)
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
        except OSError as exc:
            deadline.last_error = exc
        deadline.expire_if_due()
        await asyncio.sleep(interval)

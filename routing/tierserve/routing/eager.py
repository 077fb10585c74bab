"""Start a coroutine at once, inside the calling callback, and give it a task only if it
suspends: what Python 3.12's eager tasks do (``asyncio.eager_task_factory``), for 3.11.

Why the router needs it: a streamed request's handler runs, without suspending, from the
parsed request to the write of the upstream request (validation, variant, replica pick,
a pooled connection). Started as a task, that write waited until every other callback
in the event loop's current batch had run (under 1,000 open streams, hundreds of
relayed chunks), while the engine could already have been working on the request. Run
eagerly, the upstream request goes out from the read callback that parsed the client's
request, and the engine's answer is read in the loop's next pass as before: the wait
for the rest of the batch overlaps the engine's own time instead of adding to it.

A coroutine started here runs its first step outside any task: it must not call
``asyncio.current_task()`` or ``asyncio.timeout()`` before its first suspension (the
router's request path calls neither).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

Done = Callable[[BaseException | None], None]  # the coroutine's failure, or None


def start(coro: Coroutine[Any, Any, None], done: Done,
          loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Run ``coro`` until it suspends or ends; ``done`` is called when it ends (at once,
    or from the task that continues it, on ``loop``: the running one by default). A
    cancelled coroutine ends with ``None``."""
    try:
        first = coro.send(None)
    except StopIteration:
        done(None)
        return
    except (KeyboardInterrupt, SystemExit):
        raise  # as a task would: these stop the event loop
    except BaseException as exc:  # the handler's failure, reported to done
        done(exc)
        return
    task = (loop or asyncio.get_running_loop()).create_task(_Continued(coro, first))
    task.add_done_callback(lambda t: done(None if t.cancelled() else t.exception()))


class _Continued(Coroutine[Any, Any, None]):
    """``coro`` after a first step that yielded ``first``, as a coroutine for a task:
    the task's first step gets ``first`` (the future ``coro`` waits for), and every
    later ``send`` or ``throw`` goes straight to ``coro`` (results, failures,
    ``CancelledError``: a cancel before the task's first step reaches ``coro`` too)."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first: tuple[Any] | None = (first,)  # until the task takes it

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not None:
            self._first = None
            return first[0]
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()  # never awaited directly: a task drives it through send and throw
        raise RuntimeError("an eager continuation is driven by its task only")

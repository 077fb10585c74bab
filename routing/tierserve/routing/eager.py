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


def start(coro: Coroutine[Any, Any, None], done: Done) -> None:
    """Run ``coro`` until it suspends or ends; ``done`` is called when it ends (at once,
    or from the task that continues it). A cancelled coroutine ends with ``None``."""
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
    task = asyncio.get_running_loop().create_task(_finish(coro, first))
    task.add_done_callback(lambda t: done(None if t.cancelled() else t.exception()))


async def _finish(coro: Coroutine[Any, Any, None], first: Any) -> None:
    await _Resumed(coro, first)


class _Resumed:
    """Awaiting this continues ``coro`` after a first step that yielded ``first``: the
    task now driving it sees what ``coro`` yields, and ``coro`` what the task sends or
    throws (results, ``CancelledError``)."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro, self._first = coro, first

    def __await__(self) -> Generator[Any, Any, None]:
        coro, out = self._coro, self._first
        self._first = None
        while True:
            try:
                got = yield out
            except GeneratorExit:  # this awaitable is being closed: close coro with it
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task: pass it on
                try:
                    out = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    out = coro.send(got)
                except StopIteration:
                    return

"""Keep-alive connection pools for upstream endpoints, plain TCP and TLS alike.

One :class:`Pool` per endpoint (scheme, host, port): at most ``max_conns`` connections
open at once (requests beyond that wait, within their connect timeout, for one to come
back), idle connections closed after ``idle_s`` (one timer per pool, not per
connection), and :meth:`Pool.close` for an endpoint that left the configuration: idle
connections close at once, busy ones when their request ends.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from tierserve.routing.http1 import ConnectFailed, Exchange, OnFirst, _Conn, _now

DEFAULT_MAX_CONNS = 2048  # per endpoint; above the bench's 1,000 concurrent streams
DEFAULT_IDLE_S = 30.0  # what aiohttp's connector used before


class Pool:
    """Connections to one ``host:port``, TLS when ``ssl_context`` is given."""

    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 max_conns: int = DEFAULT_MAX_CONNS, idle_s: float = DEFAULT_IDLE_S) -> None:
        if max_conns < 1 or idle_s <= 0:
            raise ValueError("a pool needs max_conns >= 1 and idle_s > 0")
        self.host, self.port, self._ssl = host, port, ssl_context
        self._max, self._idle_s = max_conns, idle_s
        self._idle: deque[_Conn] = deque()  # oldest first; reuse takes the newest
        self._waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.open = 0  # connections open or opening, idle and busy
        self.closed = False
        self.prefix = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n".encode()

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self, connect_timeout: float) -> _Conn:
        """An idle connection, a new one, or (at the cap) the next one released."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        if self.closed:
            raise ConnectFailed("endpoint removed")
        if self.open >= self._max:
            handed = await self._wait_turn(connect_timeout)
            if handed is not None:
                return handed  # else a slot was handed over: connect in it
        else:
            self.open += 1
        return await self._dial(connect_timeout)

    async def _wait_turn(self, limit_s: float) -> _Conn | None:
        """Wait for a released connection, or ``None``: a closed one's slot is ours."""
        fut: asyncio.Future[_Conn | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, limit_s)
        except TimeoutError:
            raise ConnectFailed(f"all {self._max} connections busy") from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                got = fut.result()  # handed over just as we were cancelled: pass it on
                if got is None:
                    self._freed()
                else:
                    self.release(got)
            raise
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    async def _dial(self, limit_s: float) -> _Conn:
        """Open a connection in a slot already counted in ``open``."""
        loop = asyncio.get_running_loop()
        try:
            _t, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Conn(self._lost, loop), self.host, self.port, ssl=self._ssl,
                server_hostname=self.host if self._ssl is not None else None), limit_s)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            self._freed()
            raise ConnectFailed(type(exc).__name__) from None
        except BaseException:
            self._freed()
            raise
        return conn

    def release(self, conn: _Conn) -> None:
        """Return a finished connection for reuse, or close it."""
        if not (conn.done and conn.keep_alive) or conn.closed or self.closed:
            conn.close()
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                conn.reused = True
                fut.set_result(conn)
                return
        conn.idle_since = _now()
        self._idle.append(conn)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._idle_s, self._expire)

    def _lost(self, conn: _Conn) -> None:
        """A connection closed (either side): its slot goes to a waiter, if any."""
        self._freed()

    def _freed(self) -> None:
        """A slot is free: hand it to the first waiter, else count it free."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.open -= 1

    def _expire(self) -> None:
        """Close connections idle for ``idle_s``; re-arm for the oldest left."""
        self._timer = None
        limit = _now() - self._idle_s
        idle = self._idle
        while idle and (idle[0].closed or idle[0].idle_since <= limit):
            idle.popleft().close()
        if idle:
            wait = max(0.001, idle[0].idle_since + self._idle_s - _now())
            self._timer = asyncio.get_running_loop().call_later(wait, self._expire)

    def close(self) -> None:
        """Close idle connections now and busy ones when they are released."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._idle:
            self._idle.pop().close()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(ConnectFailed("endpoint removed"))

    def request_bytes(self, path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\n".encode() + self.prefix
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def start(self, path: str, body: bytes, *, timeout_s: float,
                    connect_timeout_s: float, on_first: OnFirst | None = None) -> Exchange:
        """Send a request and wait for the answer's head (status and headers).

        A reused keep-alive connection that the server had already closed fails before
        any byte arrives; that one case is retried once on a fresh connection.
        """
        data = self.request_bytes(path, body)
        for attempt in range(2):
            conn = await self.acquire(connect_timeout_s)
            timer = conn.loop().call_later(timeout_s, conn.expire)
            try:
                conn.send(data, on_first)
                await conn.head()
            except ConnectFailed:
                timer.cancel()
                conn.close()
                if conn.reused and not conn.started and attempt == 0:
                    continue
                raise
            except BaseException:
                timer.cancel()
                conn.close()
                raise
            return Exchange(self.release, conn, timer)
        raise ConnectFailed("unreachable")

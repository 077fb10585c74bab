"""The router's one upstream HTTP client, and the OpenAI backend on top of it.

:class:`UpstreamClient` sends every request the router forwards (OpenAI and Triton
engines, ``http://`` and ``https://`` endpoints alike) over keep-alive pools of the lean
:mod:`~tierserve.routing.http1` client (:mod:`~tierserve.routing.pool`: TLS, a
connection cap per endpoint, idle expiry; :meth:`UpstreamClient.retain` drops the pools
of endpoints that left the configuration). Every call has a timeout (connect, first
byte, idle between chunks). Failures are mapped in one place (:func:`_mapped`) to what
they mean for failover: :class:`UpstreamConnectError` (nothing was answered: safe to try
another replica), :class:`UpstreamTimeout`, and :class:`UpstreamBroken` (a stream died
after bytes reached the client).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from tierserve.core.routerconfig import TritonConfig
from tierserve.routing import http1
from tierserve.routing.pool import DEFAULT_IDLE_S, DEFAULT_MAX_CONNS, Pool
from tierserve.routing.state import EndpointState

Sink = http1.Sink  # takes relayed bytes (False: wait for ``drain`` before the next)
Drain = Callable[[], Awaitable[None]]


class UpstreamError(Exception):
    kind = "error"


class UpstreamConnectError(UpstreamError):
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class UpstreamBroken(UpstreamError):
    kind = "broken"


@dataclass(slots=True)
class UpstreamRequest:
    """What to send: the parsed body, and the original bytes when still valid."""

    path: str  # "/v1/chat/completions" or "/v1/completions"
    body: dict[str, Any]
    raw: bytes | None
    connect_timeout_s: float
    idle_timeout_s: float
    triton: TritonConfig | None = None
    on_first: http1.OnFirst | None = None  # given the first body chunk of a 2xx answer

    def data(self) -> bytes:
        if self.raw is None:
            self.raw = orjson.dumps(self.body)
        return self.raw


@dataclass(slots=True)
class Buffered:
    """A complete upstream answer (any status)."""

    status: int
    body: bytes
    content_type: str


class Stream(Protocol):
    """An open upstream stream whose first chunk has arrived."""

    first: bytes

    def relay(self, sink: Sink, drain: Drain) -> Awaitable[None]:
        """Hand every further chunk to ``sink``; raises :class:`UpstreamBroken`."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
                       timeout_s: float) -> Buffered: ...

    async def open_stream(self, ep: EndpointState, req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        """A stream once its first chunk is in, or the error answer when not 2xx."""
        ...


async def relay_chunks(chunks: AsyncIterator[bytes], sink: Sink, drain: Drain) -> None:
    """:meth:`Stream.relay` for a stream that produces its chunks in a coroutine."""
    async for chunk in chunks:
        if chunk and not sink(chunk):
            await drain()


_TRANSPORT = (http1.Timeout, http1.ConnectFailed, http1.Broken)


def _mapped(exc: Exception, *, streaming: bool = False) -> UpstreamError:
    """The one error mapping: a transport failure to the upstream error it means.

    (A function raised from ``except`` clauses, not a context manager: this is on the
    path of every request, and a generator-based ``with`` costs more than the rest.)
    """
    if streaming:
        return UpstreamBroken(type(exc).__name__)
    if isinstance(exc, http1.Timeout):
        return UpstreamTimeout()
    return UpstreamConnectError(type(exc).__name__)


class RawStream:
    """An upstream stream on one connection; chunks are relayed without a coroutine
    wake-up per chunk (the connection hands them to the sink as they arrive)."""

    def __init__(self, ex: http1.Exchange, first: bytes) -> None:
        self._ex, self.first = ex, first

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._ex.conn.chunk():
                yield chunk
        except _TRANSPORT as exc:
            raise _mapped(exc, streaming=True) from None

    async def relay(self, sink: Sink, drain: Drain) -> None:
        conn = self._ex.conn
        try:
            await conn.pipe(sink)
            while not conn.done:
                await drain()
                await conn.pipe(sink)
        except _TRANSPORT as exc:
            raise _mapped(exc, streaming=True) from None

    def close(self) -> None:
        if self._ex.conn.done:
            self._ex.finish()  # complete: the connection can serve the next request
        else:
            self._ex.abort()  # the client left mid-stream: stop the engine's work too


class UpstreamClient:
    """Pools per endpoint base URL (``scheme://host:port/prefix``), http and https."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 max_conns: int = DEFAULT_MAX_CONNS, idle_s: float = DEFAULT_IDLE_S) -> None:
        if max_conns < 1 or idle_s <= 0:
            raise ValueError(f"upstream pools need max_conns >= 1 and idle_s > 0, got "
                             f"{max_conns} and {idle_s}")
        self._ssl, self._max, self._idle_s = ssl_context, max_conns, idle_s
        self._pools: dict[str, tuple[Pool, str]] = {}

    @property
    def pools(self) -> Mapping[str, Pool]:
        return {base: entry[0] for base, entry in self._pools.items()}

    def _pool(self, base: str) -> tuple[Pool, str]:
        entry = self._pools.get(base)
        if entry is None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamConnectError(f"unsupported endpoint URL scheme {parts.scheme!r}")
            tls = parts.scheme == "https"
            if tls and self._ssl is None:
                self._ssl = ssl.create_default_context()  # verifies against system CAs
            pool = Pool(parts.hostname, parts.port or (443 if tls else 80),
                        ssl_context=self._ssl if tls else None, max_conns=self._max,
                        idle_s=self._idle_s)
            entry = self._pools[base] = (pool, parts.path.rstrip("/"))
        return entry

    async def _start(self, base: str, path: str, data: bytes, timeout_s: float,
                     connect_timeout_s: float,
                     on_first: http1.OnFirst | None = None) -> http1.Exchange:
        pool, prefix = self._pool(base)
        try:
            return await pool.start(prefix + path, data, timeout_s=timeout_s,
                                    connect_timeout_s=connect_timeout_s, on_first=on_first)
        except _TRANSPORT as exc:
            raise _mapped(exc) from None

    async def buffered(self, base: str, path: str, data: bytes, *, timeout_s: float,
                       connect_timeout_s: float) -> Buffered:
        return await self._rest(await self._start(base, path, data, timeout_s,
                                                  connect_timeout_s))

    async def open(self, base: str, path: str, data: bytes, *, timeout_s: float,
                   connect_timeout_s: float, idle_timeout_s: float,
                   ok: int = 300,
                   on_first: http1.OnFirst | None = None) -> RawStream | Buffered:
        """A stream once its first chunk is in; a buffered answer when status >= ``ok``.

        ``on_first`` gets the first chunk of a 2xx answer the moment it arrives (from
        the connection's read callback, before this coroutine resumes); pass it only
        with the default ``ok``."""
        ex = await self._start(base, path, data, timeout_s, connect_timeout_s, on_first)
        if ex.conn.status >= ok:
            return await self._rest(ex)
        try:
            first = await ex.conn.chunk()
        except _TRANSPORT as exc:
            ex.abort()
            raise _mapped(exc) from None
        except BaseException:
            ex.abort()
            raise
        if not first:
            ex.finish()
            raise UpstreamConnectError("empty stream")
        ex.idle_timeout(idle_timeout_s)
        return RawStream(ex, first)

    async def _rest(self, ex: http1.Exchange) -> Buffered:
        """The whole answer of an exchange whose head is in."""
        try:
            body = await ex.conn.body()
        except _TRANSPORT as exc:
            ex.abort()
            raise _mapped(exc) from None
        except BaseException:
            ex.abort()
            raise
        ex.finish()
        return Buffered(ex.conn.status, body, ex.conn.content_type.decode("latin-1"))

    def retain(self, bases: Iterable[str]) -> None:
        """Drop the pools of endpoints not in ``bases`` (they left the configuration)."""
        keep = set(bases)
        for base in [b for b in self._pools if b not in keep]:
            self._pools.pop(base)[0].close()

    def close(self) -> None:
        for pool, _prefix in self._pools.values():
            pool.close()
        self._pools.clear()


class OpenAIBackend:
    """Forwards requests unchanged (bytes reused when the model name already matches)."""

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
                       timeout_s: float) -> Buffered:
        return await self._client.buffered(ep.base, req.path, req.data(), timeout_s=timeout_s,
                                           connect_timeout_s=req.connect_timeout_s)

    async def open_stream(self, ep: EndpointState, req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        return await self._client.open(ep.base, req.path, req.data(), timeout_s=timeout_s,
                                       connect_timeout_s=req.connect_timeout_s,
                                       idle_timeout_s=req.idle_timeout_s,
                                       on_first=req.on_first)

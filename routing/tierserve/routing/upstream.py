"""Talking to OpenAI-compatible engines over one shared keep-alive ``ClientSession``.

Every call has a timeout (connect, first byte, idle between chunks): an upstream that
hangs never holds a request forever. Failures are typed by what they mean for failover:
``UpstreamConnectError`` (nothing was answered: safe to try another replica),
``UpstreamTimeout``, and ``UpstreamBroken`` (a stream died after bytes reached the client).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from tierserve.core.routerconfig import TritonConfig
from tierserve.routing import http1
from tierserve.routing.state import EndpointState

_JSON_HEADERS = {"Content-Type": "application/json"}


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

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
                       timeout_s: float) -> Buffered: ...

    async def open_stream(self, ep: EndpointState, req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        """A stream once its first chunk is in, or the error answer when not 2xx."""
        ...


class _AiohttpStream:
    def __init__(self, resp: aiohttp.ClientResponse, first: bytes) -> None:
        self._resp, self.first = resp, first

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamBroken(type(exc).__name__) from None

    def close(self) -> None:
        self._resp.close()


class _Http1Stream:
    def __init__(self, ex: http1.Exchange, first: bytes, idle_s: float) -> None:
        self._ex, self.first, self._idle = ex, first, idle_s

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._ex.conn
        try:
            while chunk := await conn.chunk():
                yield chunk
        except (http1.Broken, http1.Timeout, http1.ConnectFailed) as exc:
            raise UpstreamBroken(type(exc).__name__) from None

    def close(self) -> None:
        if self._ex.conn.done:
            self._ex.finish()  # complete: the connection can serve the next request
        else:
            self._ex.abort()  # the client left mid-stream: stop the engine's work too


class OpenAIBackend:
    """Forwards requests unchanged (bytes reused when the model name already matches).

    Plain-HTTP endpoints use the lean :mod:`~tierserve.routing.http1` client; HTTPS
    endpoints go through the shared aiohttp session.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._pools: dict[str, tuple[http1.Pool, str] | None] = {}

    def close(self) -> None:
        for entry in self._pools.values():
            if entry is not None:
                entry[0].close()

    def _pool(self, ep: EndpointState) -> tuple[http1.Pool, str] | None:
        if ep.base not in self._pools:
            parts = urlsplit(ep.base)
            self._pools[ep.base] = (None if parts.scheme != "http" or not parts.hostname else
                                    (http1.Pool(parts.hostname, parts.port or 80),
                                     parts.path.rstrip("/")))
        return self._pools[ep.base]

    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
                       timeout_s: float) -> Buffered:
        entry = self._pool(ep)
        if entry is None:
            return await self._aiohttp_buffered(ep, req, timeout_s)
        pool, prefix = entry
        ex = await _start_http1(pool, prefix, req, timeout_s)
        with _aborting(ex):
            body = await ex.conn.body()
        ex.finish()
        return Buffered(ex.conn.status, body, ex.conn.content_type.decode("latin-1"))

    async def _open_http1(self, entry: tuple[http1.Pool, str], req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        pool, prefix = entry
        ex = await _start_http1(pool, prefix, req, timeout_s)
        with _aborting(ex):
            if ex.conn.status >= 300:
                body = await ex.conn.body()
                ex.finish()
                return Buffered(ex.conn.status, body, ex.conn.content_type.decode("latin-1"))
            first = await ex.conn.chunk()
        if not first:
            ex.finish()
            raise UpstreamConnectError("empty stream")
        ex.idle_timeout(req.idle_timeout_s)
        return _Http1Stream(ex, first, req.idle_timeout_s)

    async def _aiohttp_buffered(self, ep: EndpointState, req: UpstreamRequest,
                                timeout_s: float) -> Buffered:
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=req.connect_timeout_s)
        try:
            async with self._session.post(ep.base + req.path, data=req.data(),
                                          headers=_JSON_HEADERS, timeout=timeout) as resp:
                body = await resp.read()
                return Buffered(resp.status, body,
                                resp.headers.get("Content-Type", "application/json"))
        except TimeoutError:
            raise UpstreamTimeout() from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamConnectError(type(exc).__name__) from None

    async def open_stream(self, ep: EndpointState, req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        entry = self._pool(ep)
        if entry is not None:
            return await self._open_http1(entry, req, timeout_s)
        timeout = aiohttp.ClientTimeout(total=None, connect=req.connect_timeout_s,
                                        sock_read=req.idle_timeout_s)
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await asyncio.wait_for(self._session.post(
                ep.base + req.path, data=req.data(), headers=_JSON_HEADERS, timeout=timeout),
                timeout_s)
            if resp.status >= 300:
                body = await asyncio.wait_for(resp.read(), timeout_s)
                resp.release()
                return Buffered(resp.status, body,
                                resp.headers.get("Content-Type", "application/json"))
            first = await asyncio.wait_for(resp.content.readany(), timeout_s)
        except TimeoutError:
            if resp is not None:
                resp.close()
            raise UpstreamTimeout() from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            if resp is not None:
                resp.close()
            raise UpstreamConnectError(type(exc).__name__) from None
        if not first:
            resp.close()
            raise UpstreamConnectError("empty stream")
        return _AiohttpStream(resp, first)


async def _start_http1(pool: http1.Pool, prefix: str, req: UpstreamRequest,
                       timeout_s: float) -> http1.Exchange:
    """Send the request head and body; map transport failures to upstream errors."""
    try:
        return await http1.start(pool, prefix + req.path, req.data(), timeout_s=timeout_s,
                                 connect_timeout_s=req.connect_timeout_s)
    except http1.Timeout:
        raise UpstreamTimeout() from None
    except (http1.ConnectFailed, http1.Broken) as exc:
        raise UpstreamConnectError(type(exc).__name__) from None


@contextlib.contextmanager
def _aborting(ex: http1.Exchange) -> Iterator[None]:
    """Abort the exchange on any failure; map transport failures to upstream errors."""
    try:
        yield
    except http1.Timeout:
        ex.abort()
        raise UpstreamTimeout() from None
    except BaseException as exc:
        ex.abort()
        if isinstance(exc, http1.Broken | http1.ConnectFailed):
            raise UpstreamConnectError(type(exc).__name__) from None
        raise

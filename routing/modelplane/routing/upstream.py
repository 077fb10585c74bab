"""Talking to OpenAI-compatible engines over one shared keep-alive ``ClientSession``.

Every call has a timeout (connect, first byte, idle between chunks): an upstream that
hangs never holds a request forever. Failures are typed by what they mean for failover:
``UpstreamConnectError`` (nothing was answered: safe to try another replica),
``UpstreamTimeout``, and ``UpstreamBroken`` (a stream died after bytes reached the client).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from modelplane.routing.config import TritonConfig
from modelplane.routing.state import EndpointState

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


class OpenAIBackend:
    """Forwards requests unchanged (bytes reused when the model name already matches)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
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

"""The engines' OpenAI-compatible HTTP server (aiohttp), for any :class:`Backend`.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streamed as SSE when
``"stream": true``), ``GET /v1/models``, ``GET /health`` (200 when ready, 503 while
cold-starting or loading the model) and ``GET /metrics`` (vLLM metric names, see
:mod:`tierserve.engine.metrics`). Request format and errors:
:mod:`tierserve.engine.openai_api`; the engine behind it is a
:class:`~tierserve.engine.backend.Backend` (simulated or llama.cpp), never named here.

Use :func:`build_app` to embed it (tests, other processes) or :func:`serve` to run it
until cancelled; ``tierserve engine`` is the command-line front end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tierserve.core.latency import LatencyProfile
from tierserve.engine.backend import Backend, Chunk, NotReady, Prepared, finish_reason
from tierserve.engine.metrics import CONTENT_TYPE, EngineMetrics
from tierserve.engine.openai_api import (
    MAX_BODY_BYTES,
    ApiError,
    Kind,
    new_id,
    parse_request,
)
from tierserve.engine.openai_responses import (
    full_response,
    models_response,
    stream_chunk,
    usage_chunk,
)
from tierserve.engine.sim_backend import SimBackend
from tierserve.engine.timing import RequestTimer


@dataclass(frozen=True)
class ServerConfig:
    """One engine server: the model name clients use and how to build its backend
    (called inside the server's event loop)."""

    served_name: str
    backend: Callable[[], Backend]
    max_body_bytes: int = MAX_BODY_BYTES


@dataclass(frozen=True)
class EngineConfig:
    """The simulated engine's server: a latency profile and a name."""

    profile: LatencyProfile
    served_name: str
    cold_start_s: float = 0.0
    max_body_bytes: int = MAX_BODY_BYTES

    def server_config(self) -> ServerConfig:
        return ServerConfig(self.served_name, lambda: SimBackend(self.profile, self.cold_start_s),
                            self.max_body_bytes)


def error_response(err: ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


class EngineServer:
    """Request handlers bound to one backend and its metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = EngineMetrics(config.served_name)
        self.backend = config.backend()
        self.metrics.bind_state(
            lambda: self.backend.state().running,
            lambda: self.backend.state().waiting,
            lambda: self.backend.state().kv_usage,
        )

    async def _body(self, request: web.Request) -> object:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(
                413, f"request body exceeds {self.config.max_body_bytes} bytes", None,
                "request_too_large",
            ) from None  # fmt: skip
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}", None, "invalid_json") from None

    async def _parse(self, request: web.Request, kind: Kind) -> Prepared:
        body = await self._body(request)
        req = parse_request(kind, body, self.config.served_name, request.headers)
        if not self.backend.ready:
            raise ApiError(503, "the engine is starting", None, "not_ready", "server_error")
        return self.backend.prepare(req)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completion")

    async def _generate(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        try:
            prep = await self._parse(request, kind)
        except ApiError as err:
            return error_response(err)
        rid = new_id(kind)
        try:
            if prep.req.stream:
                return await self._stream(request, prep, rid)
            timer = RequestTimer(self.metrics)
            chunks: list[Chunk] = []
            async with contextlib.aclosing(self.backend.generate(prep)) as gen:
                async for chunk in gen:
                    timer.tokens(len(chunk.tokens), prompt_tokens=prep.prompt_tokens)
                    chunks.append(chunk)
            timer.finished(finish_reason(chunks), prep.prompt_tokens)
            return web.json_response(full_response(prep.req, rid, prep.prompt_tokens, chunks))
        except NotReady as exc:
            return error_response(ApiError(503, str(exc), None, "not_ready", "server_error"))
        except RuntimeError as exc:  # the engine stopped or failed underneath
            return error_response(ApiError(503, str(exc), None, "engine_stopped", "server_error"))

    async def _stream(self, request: web.Request, prep: Prepared, rid: str) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        timer = RequestTimer(self.metrics)
        finish, offset = "stop", 0
        try:
            async with contextlib.aclosing(self.backend.generate(prep)) as gen:
                async for chunk in gen:
                    timer.tokens(len(chunk.tokens), prompt_tokens=prep.prompt_tokens)
                    first = not resp.prepared
                    if first:
                        await resp.prepare(request)
                    await resp.write(_sse(stream_chunk(prep.req, rid, chunk, first, offset)))
                    offset += len(chunk.text)
                    finish = chunk.finish_reason or finish
        except NotReady:
            raise
        except RuntimeError as exc:  # the engine stopped (server shutting down)
            err = ApiError(503, str(exc), None, "engine_stopped", "server_error")
            if not resp.prepared:
                return error_response(err)
            await resp.write(_sse(err.body()))
            return resp
        timer.finished(finish, prep.prompt_tokens)
        if not resp.prepared:
            await resp.prepare(request)
        if prep.req.include_usage:
            await resp.write(_sse(usage_chunk(prep.req, rid, prep.prompt_tokens,
                                              timer.generated)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response(models_response(self.config.served_name,
                                                 self.backend.max_model_len))

    async def health(self, _: web.Request) -> web.Response:
        if self.backend.ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="starting")

    async def metrics_handler(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


@web.middleware
async def _json_errors(
    request: web.Request, handler: Any
) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (404 route, 405, 413) into OpenAI-style JSON."""
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = "request_too_large" if exc.status == 413 else None
        return error_response(ApiError(exc.status, exc.reason, None, code))


def build_app(config: EngineConfig | ServerConfig) -> web.Application:
    """The aiohttp application; the backend starts and stops with the app."""
    if isinstance(config, EngineConfig):
        config = config.server_config()
    server = EngineServer(config)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_json_errors])
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/health", server.health)
    app.router.add_get("/metrics", server.metrics_handler)

    async def lifecycle(_: web.Application) -> Any:
        await server.backend.start()
        yield
        await server.backend.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start(config: EngineConfig | ServerConfig, host: str, port: int) -> web.AppRunner:
    """Start serving in the running loop; ``await runner.cleanup()`` stops it."""
    # handler_cancellation: a client that disconnects cancels its handler, which
    # aborts its request in the engine (aiohttp leaves this off by default).
    runner = web.AppRunner(build_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(config: EngineConfig | ServerConfig, host: str, port: int) -> None:
    """Run the server until cancelled."""
    runner = await start(config, host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

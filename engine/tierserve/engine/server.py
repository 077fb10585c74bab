"""The live simulated engine: an OpenAI-compatible HTTP server (aiohttp).

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streamed as SSE when
``"stream": true``), ``GET /v1/models``, ``GET /health`` (200 when ready, 503 while
cold-starting) and ``GET /metrics`` (vLLM metric names, see
:mod:`tierserve.engine.metrics`). Request format and errors:
:mod:`tierserve.engine.openai_api`; timing: :mod:`tierserve.engine.runner`.

Use :func:`build_app` to embed it (tests, other processes) or :func:`serve` to run it
until cancelled; ``tierserve engine`` is the command-line front end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tierserve.core.latency import LatencyProfile, RequestTooLarge
from tierserve.engine.metrics import CONTENT_TYPE, EngineMetrics
from tierserve.engine.openai_api import (
    MAX_BODY_BYTES,
    ApiError,
    GenRequest,
    Kind,
    full_response,
    models_response,
    new_id,
    parse_request,
    stream_chunk,
    usage_chunk,
)
from tierserve.engine.runner import EngineRunner, NotReady


@dataclass(frozen=True)
class EngineConfig:
    """Everything one engine server needs; built once by the caller."""

    profile: LatencyProfile
    served_name: str
    cold_start_s: float = 0.0
    max_body_bytes: int = MAX_BODY_BYTES


def error_response(err: ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


class EngineServer:
    """Request handlers bound to one :class:`EngineRunner` and its metrics."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.metrics = EngineMetrics(config.served_name)
        self.runner = EngineRunner(config.profile, self.metrics, config.cold_start_s)

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

    async def _parse(self, request: web.Request, kind: Kind) -> GenRequest:
        body = await self._body(request)
        req = parse_request(
            kind,
            body,
            self.config.served_name,
            self.config.profile.max_model_len,
            request.headers,
        )
        try:
            self.runner.check(req.prompt_tokens, req.output_tokens)
        except RequestTooLarge as exc:
            raise ApiError(400, str(exc), "max_tokens", "context_length_exceeded") from None
        if not self.runner.ready:
            raise ApiError(503, "the engine is starting", None, "not_ready", "server_error")
        return req

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completion")

    async def _generate(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        try:
            req = await self._parse(request, kind)
        except ApiError as err:
            return error_response(err)
        rid = new_id(kind)
        try:
            if req.stream:
                return await self._stream(request, req, rid)
            generated = 0
            gen = self.runner.generate(req.prompt_tokens, req.output_tokens, req.finish_reason)
            async with contextlib.aclosing(gen) as tokens:
                async for n in tokens:
                    generated += n
            return web.json_response(full_response(req, rid, generated))
        except NotReady as exc:
            return error_response(ApiError(503, str(exc), None, "not_ready", "server_error"))

    async def _stream(self, request: web.Request, req: GenRequest, rid: str) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        generated = 0
        gen = self.runner.generate(req.prompt_tokens, req.output_tokens, req.finish_reason)
        try:
            async with contextlib.aclosing(gen) as tokens:
                async for n in tokens:
                    if generated == 0:
                        await resp.prepare(request)
                    done = generated + n >= req.output_tokens
                    chunk = stream_chunk(req, rid, generated, n, done, first=generated == 0)
                    generated += n
                    await resp.write(_sse(chunk))
        except NotReady:
            raise
        except RuntimeError as exc:  # the engine stopped (server shutting down)
            err = ApiError(503, str(exc), None, "engine_stopped", "server_error")
            if not resp.prepared:
                return error_response(err)
            await resp.write(_sse(err.body()))
            return resp
        if req.include_usage:
            await resp.write(_sse(usage_chunk(req, rid, generated)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(self, _: web.Request) -> web.Response:
        cfg = self.config
        return web.json_response(models_response(cfg.served_name, cfg.profile.max_model_len))

    async def health(self, _: web.Request) -> web.Response:
        if self.runner.ready:
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


def build_app(config: EngineConfig) -> web.Application:
    """The aiohttp application; the engine task starts and stops with the app."""
    server = EngineServer(config)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_json_errors])
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/health", server.health)
    app.router.add_get("/metrics", server.metrics_handler)

    async def lifecycle(_: web.Application) -> Any:
        await server.runner.start()
        yield
        await server.runner.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start(config: EngineConfig, host: str, port: int) -> web.AppRunner:
    """Start serving in the running loop; ``await runner.cleanup()`` stops it."""
    # handler_cancellation: a client that disconnects cancels its handler, which
    # aborts its request in the engine (aiohttp leaves this off by default).
    runner = web.AppRunner(build_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(config: EngineConfig, host: str, port: int) -> None:
    """Run the server until cancelled."""
    runner = await start(config, host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

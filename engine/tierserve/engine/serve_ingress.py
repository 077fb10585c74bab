"""The HTTP front of the Ray Serve application: OpenAI routes over engine replicas.

Serves the routes and errors of :mod:`tierserve.engine.server` (same validation and
response shapes) by calling the engine deployment's handle: ``generate`` streams
``Started`` (or ``Refused``) and then :class:`~tierserve.engine.backend.Chunk` s;
``complete`` answers a non-streamed request in one message, with when each chunk came,
so the per-token latency histograms are the same either way. The messages between the
two deployments are defined here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tierserve.engine.backend import Chunk, EngineState, finish_reason
from tierserve.engine.metrics import CONTENT_TYPE, EngineMetrics
from tierserve.engine.openai_api import (
    MAX_BODY_BYTES,
    ApiError,
    GenRequest,
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
from tierserve.engine.timing import RequestTimer

ROUTES: dict[str, Kind] = {"/v1/chat/completions": "chat", "/v1/completions": "completion"}


@dataclass(frozen=True)
class Started:
    """The first item of a stream: the request was accepted with this prompt length."""

    prompt_tokens: int


@dataclass(frozen=True)
class Refused:
    """The first (and only) item when the engine refused the request."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Completed:
    """A whole non-streamed answer, with when each chunk came (seconds after the start)."""

    prompt_tokens: int
    chunks: tuple[Chunk, ...]
    arrivals: tuple[float, ...]


def _unavailable(exc: BaseException) -> ApiError:
    return ApiError(503, f"engine replica failed: {type(exc).__name__}", None,
                    "engine_unavailable", "server_error")


class Ingress:
    """HTTP front of the application (wrapped as a deployment in ``serve_app``)."""

    def __init__(self, engine: DeploymentHandle[Any], served_name: str,
                 max_model_len: int) -> None:
        self.engine = engine
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.metrics = EngineMetrics(served_name)

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        root = str(request.scope.get("root_path") or "")
        if root and path.startswith(root):  # served under a route prefix
            path = path[len(root) :]
        path = path.rstrip("/")
        try:
            if request.method == "POST" and path in ROUTES:
                return await self._generate(await self._parse(request, ROUTES[path]))
            if request.method == "GET" and path == "/v1/models":
                return JSONResponse(models_response(self.served_name, self.max_model_len))
            if request.method == "GET" and path == "/health":
                return Response("ok")
            if request.method == "GET" and path == "/metrics":
                return await self._metrics()
            raise ApiError(404, f"no route {request.method} {path}", None, "not_found")
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status)

    async def _parse(self, request: Request, kind: Kind) -> GenRequest:
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, "request body too large", None, "request_too_large")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}", None, "invalid_json") from None
        # starlette's Headers is a case-insensitive mapping, as parse_request expects
        return parse_request(kind, body, self.served_name, request.headers)

    async def _generate(self, req: GenRequest) -> Response:
        rid = new_id(req.kind)
        if req.stream:
            return await self._open_stream(req, rid)
        timer = RequestTimer(self.metrics)
        try:
            done = await self.engine.complete.remote(req)
        except Exception as exc:  # replica died or was restarted under the request
            return JSONResponse(_unavailable(exc).body(), status_code=503)
        if isinstance(done, Refused):
            return JSONResponse(done.body, status_code=done.status)
        for at, chunk in zip(done.arrivals, done.chunks, strict=True):
            timer.tokens(len(chunk.tokens), at=timer.start + at,
                         prompt_tokens=done.prompt_tokens)
        timer.finished(finish_reason(list(done.chunks)), done.prompt_tokens)
        return JSONResponse(full_response(req, rid, done.prompt_tokens, done.chunks))

    async def _open_stream(self, req: GenRequest, rid: str) -> Response:
        """Wait for the engine to accept (an error is a plain 4xx), then stream."""
        timer = RequestTimer(self.metrics)
        items = cast(AsyncIterator[Any],
                     self.engine.options(stream=True).generate.remote(req))
        try:
            first = await anext(items)
        except Exception as exc:
            return JSONResponse(_unavailable(exc).body(), status_code=503)
        if isinstance(first, Refused):
            return JSONResponse(first.body, status_code=first.status)
        assert isinstance(first, Started)
        return StreamingResponse(self._sse(req, rid, first.prompt_tokens, items, timer),
                                 media_type="text/event-stream")

    async def _sse(self, req: GenRequest, rid: str, prompt_tokens: int,
                   items: AsyncIterator[Any], timer: RequestTimer) -> AsyncIterator[str]:
        finish, offset, first = "stop", 0, True
        try:
            async for chunk in items:
                assert isinstance(chunk, Chunk)
                timer.tokens(len(chunk.tokens), prompt_tokens=prompt_tokens)
                yield _sse(stream_chunk(req, rid, chunk, first, offset))
                first, offset = False, offset + len(chunk.text)
                finish = chunk.finish_reason or finish
        except Exception as exc:
            yield _sse(_unavailable(exc).body())
            return
        timer.finished(finish, prompt_tokens)
        if req.include_usage:
            yield _sse(usage_chunk(req, rid, prompt_tokens, timer.generated))
        yield "data: [DONE]\n\n"

    async def _metrics(self) -> Response:
        try:
            states = await self.engine.broadcast("state").results_async()
        except Exception:  # a replica restarting: keep the last values
            states = None
        if states is not None:
            values = list(states.values()) if isinstance(states, Mapping) else list(states)
            got = [s for s in values if isinstance(s, EngineState)]
            running = sum(s.running for s in got)
            waiting = sum(s.waiting for s in got)
            kv = sum(s.kv_usage for s in got) / max(len(got), 1)
            self.metrics.set_state(running, waiting, kv)
        return Response(self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _sse(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

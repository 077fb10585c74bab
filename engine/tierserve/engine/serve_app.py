"""The simulated engine as a Ray Serve application (what RayService.serveConfigV2 runs).

Import path for ``serveConfigV2`` / ``serve run``::

    import_path: tierserve.engine.serve_app:build_app
    args: {profile: llama-3.1-8b-h100, served_name: llama-8b, num_replicas: 2}

Two deployments:

* ``SimEngine`` (``num_replicas`` replicas): one :class:`EngineRunner` per replica,
  streaming the token count of each engine step back through a deployment handle;
* ``OpenAIIngress`` (one replica): the HTTP routes of :mod:`tierserve.engine.server`
  (same request validation and response format, via :mod:`tierserve.engine.openai_api`)
  and ``/metrics`` with the vLLM names. Latency histograms and token counters are
  observed at the ingress; the running / waiting / KV gauges are summed over a
  broadcast to every engine replica at scrape time.

A replica that dies mid-request turns into an OpenAI-style 503 for a non-streamed
request, or an SSE ``error`` event for a streamed one; Ray Serve restarts the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tierserve.core.latency import EngineCore, LatencyProfile, RequestTooLarge
from tierserve.core.profiles import get_profile
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
from tierserve.engine.runner import EngineRunner

ROUTES: dict[str, Kind] = {"/v1/chat/completions": "chat", "/v1/completions": "completion"}


class _SimEngine:
    """One simulated engine replica."""

    def __init__(
        self, profile_name: str, cold_start_s: float = 0.0, stream_batch_ms: float = 0.0
    ) -> None:
        self.runner = EngineRunner(get_profile(profile_name), None, 0.0)
        self.stream_batch_s = stream_batch_ms / 1000.0
        self._started: asyncio.Task[None] | None = None
        if cold_start_s > 0:  # the replica is not ready (and gets no traffic) until done
            time.sleep(cold_start_s)

    async def _ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self.runner.start())
        await self._started
        while not self.runner.ready:
            await asyncio.sleep(0)

    async def generate(self, prompt_tokens: int, output_tokens: int) -> AsyncGenerator[int, None]:
        """Yield new-token counts; cancelling aborts the request.

        One yield per engine step, or, with ``stream_batch_ms``, the tokens of all steps
        within that interval (the first token always goes out at once), like Ray Serve
        LLM's ``stream_batching_interval_ms``: fewer Ray messages, burstier streams.
        """
        await self._ensure_started()
        loop = asyncio.get_running_loop()
        pending, generated, last = 0, 0, 0.0
        gen = self.runner.generate(prompt_tokens, output_tokens)
        async with contextlib.aclosing(gen) as tokens:
            async for n in tokens:
                pending += n
                generated += n
                now = loop.time()
                first_or_last = generated == n or generated >= output_tokens
                if first_or_last or now - last >= self.stream_batch_s:
                    yield pending
                    pending, last = 0, now

    async def complete(self, prompt_tokens: int, output_tokens: int) -> tuple[int, float]:
        """Run a request to the end in one call: (tokens, seconds to the first token).

        Non-streamed requests use this, saving one Ray message per token.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        first: float | None = None
        generated = 0
        async for n in self.generate(prompt_tokens, output_tokens):
            if first is None:
                first = loop.time() - start
            generated += n
        return generated, first or 0.0

    async def pid(self) -> int:
        """Process id of this replica (for tests and diagnostics)."""
        return os.getpid()

    async def state(self) -> tuple[int, int, float]:
        """(running, waiting, KV usage) of this replica."""
        core = self.runner.core
        return core.num_running, core.num_waiting, core.kv_usage


SimEngine = serve.deployment(
    name="SimEngine",
    max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0.1}
)(_SimEngine)


class _Ingress:
    """HTTP front of the application (wrapped as a deployment below)."""

    def __init__(self, engine: DeploymentHandle[Any], profile_name: str, served_name: str) -> None:
        self.engine = engine
        self.profile: LatencyProfile = get_profile(profile_name)
        self.served_name = served_name
        self.metrics = EngineMetrics(served_name)
        self._checker = EngineCore(self.profile)

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        root = str(request.scope.get("root_path") or "")
        if root and path.startswith(root):  # served under a route prefix
            path = path[len(root) :]
        path = path.rstrip("/")
        try:
            if request.method == "POST" and path in ROUTES:
                return await self._generate(request, ROUTES[path])
            if request.method == "GET" and path == "/v1/models":
                return JSONResponse(models_response(self.served_name, self.profile.max_model_len))
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
        req = parse_request(
            kind, body, self.served_name, self.profile.max_model_len, request.headers
        )
        try:
            self._checker.check(req.prompt_tokens, req.output_tokens)
        except RequestTooLarge as exc:
            raise ApiError(400, str(exc), "max_tokens", "context_length_exceeded") from None
        return req

    def _tokens(self, req: GenRequest) -> AsyncIterator[int]:
        handle = self.engine.options(stream=True)
        gen = handle.generate.remote(req.prompt_tokens, req.output_tokens)
        return cast(AsyncIterator[int], gen)

    async def _generate(self, request: Request, kind: Kind) -> Response:
        req = await self._parse(request, kind)
        rid = new_id(kind)
        if req.stream:
            return StreamingResponse(self._sse(req, rid), media_type="text/event-stream")
        timer = _Timer()
        try:
            generated, ttft = await self.engine.complete.remote(
                req.prompt_tokens, req.output_tokens
            )
        except Exception as exc:  # replica died or was restarted under the request
            err = ApiError(503, f"engine replica failed: {type(exc).__name__}", None,
                           "engine_unavailable", "server_error")  # fmt: skip
            return JSONResponse(err.body(), status_code=503)
        timer.first = timer.start + ttft
        timer.finished(self.metrics, req, generated)
        return JSONResponse(full_response(req, rid, generated))

    async def _sse(self, req: GenRequest, rid: str) -> AsyncIterator[str]:
        timer = _Timer()
        generated = 0
        try:
            async for n in self._tokens(req):
                timer.token()
                done = generated + n >= req.output_tokens
                yield _sse(stream_chunk(req, rid, generated, n, done, first=generated == 0))
                generated += n
        except Exception as exc:
            err = ApiError(503, f"engine replica failed: {type(exc).__name__}", None,
                           "engine_unavailable", "server_error")  # fmt: skip
            yield _sse(err.body())
            return
        timer.finished(self.metrics, req, generated)
        if req.include_usage:
            yield _sse(usage_chunk(req, rid, generated))
        yield "data: [DONE]\n\n"

    async def _metrics(self) -> Response:
        try:
            states = await self.engine.broadcast("state").results_async()
        except Exception:  # a replica restarting: keep the last values
            states = None
        if states is not None:
            values = list(states.values()) if isinstance(states, Mapping) else list(states)
            running = sum(s[0] for s in values)
            waiting = sum(s[1] for s in values)
            kv = sum(s[2] for s in values) / max(len(values), 1)
            self.metrics.set_state(running, waiting, kv)
        return Response(self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


OpenAIIngress = serve.deployment(
    name="OpenAIIngress",
    max_ongoing_requests=4096, ray_actor_options={"num_cpus": 0.1}
)(_Ingress)


class _Timer:
    """Server-side TTFT / e2e of one request, for the ingress metrics."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.first: float | None = None

    def token(self) -> None:
        if self.first is None:
            self.first = self.loop.time()

    def finished(self, metrics: EngineMetrics, req: GenRequest, generated: int) -> None:
        end = self.loop.time()
        first = self.first if self.first is not None else end
        metrics.finished(
            req.finish_reason, req.prompt_tokens, generated, first - self.start, end - self.start
        )


def _sse(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"


def build_app(args: Mapping[str, Any]) -> serve.Application:
    """Ray Serve application builder.

    ``args``: ``profile`` (required), ``served_name`` (default: the profile's model),
    ``num_replicas`` (1), ``cold_start_s`` (0), ``stream_batch_ms`` (0: a chunk per step).
    """
    profile = get_profile(str(args["profile"]))
    served_name = str(args.get("served_name") or profile.model)
    replicas = int(args.get("num_replicas", 1))
    cold = float(args.get("cold_start_s", 0.0))
    batch_ms = float(args.get("stream_batch_ms", 0.0))
    engine = SimEngine.options(num_replicas=replicas).bind(profile.name, cold, batch_ms)
    return OpenAIIngress.bind(engine, profile.name, served_name)

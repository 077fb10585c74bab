"""HTTP handlers: thin; read, check, delegate, and map every failure to an OpenAI error.

Logs carry the request id, route, status and key *name* only; never prompts or keys.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierserve.routing.dispatch import Call, Dispatcher
from tierserve.routing.errors import RouterError, bad_request, error_body, unknown_model
from tierserve.routing.respond import Responder
from tierserve.routing.routes import RouteRuntime
from tierserve.routing.state import DeploymentRuntime
from tierserve.routing.validate import parse_body, request_id

if TYPE_CHECKING:
    from tierserve.routing.app import Router

log = logging.getLogger(__name__)
_CHAT, _COMPLETIONS = "/v1/chat/completions", "/v1/completions"


class Handlers:
    def __init__(self, router: Router) -> None:
        self._router = router
        # Unique per process and request, without a syscall per request.
        self._id_prefix, self._seq = os.urandom(6).hex() + "-", 0
        self._dispatcher: Dispatcher | None = None
        self._responder: Responder | None = None

    def attach(self, dispatcher: Dispatcher, responder: Responder) -> None:
        self._dispatcher, self._responder = dispatcher, responder

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        router, snap = self._router, self._router.snapshot
        server = snap.config.server
        self._seq += 1
        rid = request_id(request.headers.get(server.request_id_header),
                         f"{self._id_prefix}{self._seq:x}")
        call: Call | None = None
        try:
            key = router.keys.authenticate(request.headers.get("Authorization"))
            raw = await _read_body(request, server.max_body_bytes)
            body = parse_body(raw, chat)
            route = snap.routes.get(body["model"])
            if route is None:
                raise unknown_model(body["model"])
            if key is not None:
                key.admit()
            call = self._call(request, rid, chat, raw, body, route, snap.deployments,
                              server.tier_header)
            assert self._dispatcher is not None and self._responder is not None
            out = await self._dispatcher.run(call)
            resp = await self._responder.send(call, out, request)
            if key is not None:
                key.charge_tokens(int(out.extra.get("tokens", 0)))
            return resp
        except RouterError as exc:
            return self._error(exc, rid, call)
        except Exception:
            log.exception("request %s failed inside the router", rid)
            return self._error(RouterError(500, "internal router error", "api_error",
                                           "internal_error"), rid, call)

    def _call(self, request: web.Request, rid: str, chat: bool, raw: bytes,
              body: dict[str, Any], route: RouteRuntime,
              deployments: Mapping[str, DeploymentRuntime], tier_header: str) -> Call:
        cfg, now = route.cfg, self._router.clock()
        forced = request.headers.get(tier_header)
        if forced is not None and forced not in ("fast", "slow"):
            raise bad_request(f"header {tier_header} must be 'fast' or 'slow'")
        return Call(rid, chat, _CHAT if chat else _COMPLETIONS, body, raw,
                    bool(body.get("stream")), now, now + cfg.timeout_s, route, deployments,
                    request.headers.get(cfg.sticky_header) if cfg.sticky_header else None,
                    request.headers.get(cfg.affinity_header) if cfg.affinity_header else None,
                    forced)

    def _error(self, exc: RouterError, rid: str, call: Call | None) -> web.Response:
        if exc.status >= 500:
            log.warning("request %s: %d %s", rid, exc.status, exc.code)
        headers = {self._router.snapshot.config.server.request_id_header: rid}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        if self._responder is not None:
            self._responder.record_error(call, exc.status)
        return web.Response(status=exc.status, body=exc.body(rid), headers=headers,
                            content_type="application/json")

    async def models(self, request: web.Request) -> web.Response:
        return web.Response(body=self._router.snapshot.models_body,
                            content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self._dispatcher is not None
        return web.json_response({"status": "ready" if ready else "starting"},
                                 status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._router.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def not_found(self, request: web.Request) -> web.Response:
        rid = os.urandom(12).hex()
        return web.Response(status=404, content_type="application/json", body=error_body(
            "unknown path", "invalid_request_error", "not_found", None, rid))


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them when possible."""
    too_big = RouterError(413, f"request body exceeds {limit} bytes", "invalid_request_error",
                          "request_too_large")
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_big
        try:
            return await request.read()
        except (ConnectionError, web.HTTPException) as exc:
            raise bad_request("request body could not be read") from exc
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)

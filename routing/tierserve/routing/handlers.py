"""HTTP handlers: thin; read, check, delegate, and map every failure to an OpenAI error.

Logs carry the request id, route, status and key *name* only; never prompts or keys.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierserve.routing.dispatch import Call, Dispatcher
from tierserve.routing.errors import RouterError, bad_request, error_body, unknown_model
from tierserve.routing.respond import Responder, sse_error
from tierserve.routing.routes import RouteRuntime
from tierserve.routing.server import Request
from tierserve.routing.state import DeploymentRuntime
from tierserve.routing.validate import parse_body, request_id

if TYPE_CHECKING:
    from tierserve.routing.app import Router

log = logging.getLogger(__name__)
_CHAT, _COMPLETIONS = "/v1/chat/completions", "/v1/completions"
_JSON = "application/json"
AB_STATISTICS_PATH = "/internal/ab"  # one replica's A/B statistics (cluster.py merges them)


class Handlers:
    def __init__(self, router: Router) -> None:
        self._router = router
        # Unique per process and request, without a syscall per request.
        self._id_prefix, self._seq = os.urandom(6).hex() + "-", 0
        self._dispatcher: Dispatcher | None = None
        self._responder: Responder | None = None
        self._routes: dict[tuple[str, str], Callable[[Request], Coroutine[Any, Any, None]]] = {
            ("POST", _CHAT): self.chat, ("POST", _COMPLETIONS): self.completions,
            ("GET", "/v1/models"): self.models, ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz, ("GET", "/metrics"): self.metrics,
            ("GET", AB_STATISTICS_PATH): self.ab_statistics}

    def attach(self, dispatcher: Dispatcher, responder: Responder) -> None:
        self._dispatcher, self._responder = dispatcher, responder

    def new_id(self) -> str:
        self._seq += 1
        return f"{self._id_prefix}{self._seq:x}"

    def body_limit(self) -> int:
        return self._router.snapshot.config.server.max_body_bytes

    async def handle(self, request: Request) -> None:
        """The server's one entry point: route by method and path."""
        handler = self._routes.get((request.method, request.path))
        if request.rejected is not None and handler in (self.chat, self.completions):
            await self._serve(request, chat=handler == self.chat)
            return
        await (handler or self.not_found)(request)

    async def chat(self, request: Request) -> None:
        await self._serve(request, chat=True)

    async def completions(self, request: Request) -> None:
        await self._serve(request, chat=False)

    async def _serve(self, request: Request, chat: bool) -> None:
        router, snap = self._router, self._router.snapshot
        server = snap.config.server
        rid = request_id(request.headers.get(server.request_id_header.lower()), self.new_id())
        call: Call | None = None
        try:
            if request.rejected is not None:
                raise _rejection(*request.rejected, server.max_body_bytes)
            key = router.keys.authenticate(request.headers.get("authorization"))
            body = parse_body(request.body, chat)
            route = snap.routes.get(body["model"])
            if route is None:
                raise unknown_model(body["model"])
            if key is not None:
                key.admit()
            call = self._call(request, rid, chat, body, route, snap.deployments,
                              server.tier_header)
            assert self._dispatcher is not None and self._responder is not None
            if call.stream:
                call.on_first = self._responder.committer(call, request)
            out = await self._dispatcher.run(call)
            await self._responder.send(call, out, request)
            if key is not None:
                key.charge_tokens(int(out.extra.get("tokens", 0)))
        except RouterError as exc:
            self._error(request, exc, rid, call)
        except Exception:
            log.exception("request %s failed inside the router", rid)
            self._error(request, RouterError(500, "internal router error", "api_error",
                                             "internal_error"), rid, call)

    def _call(self, request: Request, rid: str, chat: bool, body: dict[str, Any],
              route: RouteRuntime, deployments: Mapping[str, DeploymentRuntime],
              tier_header: str) -> Call:
        cfg, now, headers = route.cfg, self._router.clock(), request.headers
        forced = headers.get(tier_header.lower())
        if forced is not None and forced not in ("fast", "slow"):
            raise bad_request(f"header {tier_header} must be 'fast' or 'slow'")
        return Call(rid, chat, _CHAT if chat else _COMPLETIONS, body, request.body,
                    bool(body.get("stream")), now, now + cfg.timeout_s, route, deployments,
                    headers.get(cfg.sticky_header.lower()) if cfg.sticky_header else None,
                    headers.get(cfg.affinity_header.lower()) if cfg.affinity_header else None,
                    forced)

    def _error(self, request: Request, exc: RouterError, rid: str, call: Call | None) -> None:
        if exc.status >= 500:
            log.warning("request %s: %d %s", rid, exc.status, exc.code)
        if self._responder is not None:
            self._responder.record_error(call, exc.status, exc.code)
        if request.started:  # a stream under way: it ends with an SSE error event
            if not request.finished:
                request.write(request.frame(sse_error(rid)))
                request.end_stream()
            return
        headers = [(self._router.snapshot.config.server.request_id_header, rid)]
        if exc.retry_after_s is not None:
            headers.append(("Retry-After", str(max(1, math.ceil(exc.retry_after_s)))))
        request.respond(exc.status, exc.body(rid), _JSON, headers)

    async def models(self, request: Request) -> None:
        request.respond(200, self._router.snapshot.models_body, _JSON)

    async def healthz(self, request: Request) -> None:
        request.respond(200, b'{"status":"ok"}', _JSON)

    async def readyz(self, request: Request) -> None:
        ready = self._dispatcher is not None
        request.respond(200 if ready else 503,
                        orjson.dumps({"status": "ready" if ready else "starting"}), _JSON)

    async def metrics(self, request: Request) -> None:
        request.respond(200, generate_latest(self._router.metrics.registry),
                        CONTENT_TYPE_LATEST)

    async def ab_statistics(self, request: Request) -> None:
        # Latency samples and counts only (no prompt, no key): /metrics shows as much.
        request.respond(200, orjson.dumps(self._router.ab_statistics()), _JSON)

    async def not_found(self, request: Request) -> None:
        request.respond(404, error_body("unknown path", "invalid_request_error", "not_found",
                                        None, os.urandom(12).hex()), _JSON)


def _rejection(status: int, message: str, limit: int) -> RouterError:
    """The error for a request the server refused while reading it."""
    if status == 413:
        return RouterError(413, f"request body exceeds {limit} bytes",
                           "invalid_request_error", "request_too_large")
    return RouterError(status, message, "invalid_request_error", "invalid_request")

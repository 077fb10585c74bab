"""Sending an outcome to the client, and recording what happened.

Streams are relayed chunk by chunk. A stream that breaks after bytes reached the client
(the backend died, or it ended without ``data: [DONE]``) ends with an explicit SSE error
event followed by ``[DONE]``, never a silently truncated answer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tierserve.routing.dispatch import Call, Outcome
from tierserve.routing.errors import bad_gateway, error_body, looks_like_openai_error
from tierserve.routing.failover import release
from tierserve.routing.metrics import RouterMetrics
from tierserve.routing.state import Clock
from tierserve.routing.tiering import cost_per_token, sse_from_answer
from tierserve.routing.upstream import UpstreamBroken

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(slots=True)
class Result:
    status: int
    tokens_in: int = 0
    tokens_out: int = 0
    ttft: float | None = None
    tpot: float | None = None
    added: float | None = None


class Responder:
    def __init__(self, *, metrics: RouterMetrics, clock: Clock, id_header: str) -> None:
        self._metrics, self._clock, self._id_header = metrics, clock, id_header

    async def send(self, call: Call, out: Outcome, request: web.Request) -> web.StreamResponse:
        if out.stream is not None:
            return await self._relay(call, out, request)
        b = out.buffered
        assert b is not None
        if b.status >= 500 and not looks_like_openai_error(b.body):
            err = bad_gateway(f"upstream answered {b.status}")
            resp = web.Response(status=502, body=err.body(call.request_id),
                                content_type="application/json")
        elif out.replay_sse and b.status == 200 and out.answer is not None:
            resp = web.Response(status=200, body=sse_from_answer(out.answer, call.chat),
                                headers=SSE_HEADERS)
        else:
            resp = web.Response(status=b.status, body=b.body,
                                headers={"Content-Type": b.content_type})
        resp.headers[self._id_header] = call.request_id
        result = Result(resp.status)
        if b.status == 200:
            _usage(out.answer if out.answer is not None else _parse(b.body), result)
        now = self._clock()
        result.added = (now - call.started) - out.upstream_s
        if result.tokens_out:
            result.tpot = out.upstream_s / result.tokens_out
        self.record(call, out, result, now)
        return resp

    async def _relay(self, call: Call, out: Outcome, request: web.Request) -> web.StreamResponse:
        assert out.stream is not None and out.ep is not None
        stream, first_at = out.stream, self._clock()
        resp = web.StreamResponse(status=200, headers={**SSE_HEADERS,
                                                       self._id_header: call.request_id})
        await resp.prepare(request)
        await resp.write(stream.first)  # the head goes out with it (aiohttp coalesces)
        result = Result(200, ttft=first_at - call.started)
        result.added = (out.upstream_start - call.started) + (self._clock() - first_at)
        sink = _Sink(request, resp, stream.first, self._clock)
        ok = True
        try:
            await stream.relay(sink, sink.drain)
            if sink.gone:
                raise ConnectionResetError("client went away")
            if b"[DONE]" not in sink.tail:
                raise UpstreamBroken("stream ended without [DONE]")
        except UpstreamBroken:
            ok, result.status = False, 502
            self._metrics.count(self._metrics.stream_errors, out.dep.name).inc()
            await _write_quietly(resp, _sse_error(call.request_id))
        except ConnectionError:
            result.status = 499  # the client went away; not the backend's fault
        finally:
            stream.close()
            release(out.dep, out.ep, ok, self._metrics)
            out.dep.gate.release()
        result.tokens_out = max(0, sink.events - 1)  # one event per token, minus [DONE]
        if result.tokens_out > 1:
            result.tpot = (sink.last_at - first_at) / (result.tokens_out - 1)
        self.record(call, out, result, self._clock())
        await _eof_quietly(resp)
        return resp

    def record(self, call: Call, out: Outcome, r: Result, now: float) -> None:
        m, route, variant = self._metrics, call.route.model, out.variant.name
        out.extra["tokens"] = r.tokens_in + r.tokens_out
        m.count(m.requests, route, variant, out.tier, out.dep.name, str(r.status)).inc()
        s = m.series(route, variant, out.tier, out.dep.name)
        e2e = now - call.started
        s.e2e.observe(e2e)
        if r.ttft is not None:
            s.ttft.observe(r.ttft)
        if r.tpot is not None:
            s.tpot.observe(r.tpot)
        if r.tokens_in:
            s.tokens_in.inc(r.tokens_in)
        if r.tokens_out:
            s.tokens_out.inc(r.tokens_out)
        if r.added is not None:
            m.count(m.added, route).observe(max(0.0, r.added))
        ok = r.status < 400
        call.route.ab.record(variant, ok=ok, e2e=e2e, ttft=r.ttft, tpot=r.tpot)
        if ok and out.tier == "fast" and out.variant.tiers is not None:
            slow = call.deployments[out.variant.tiers.cfg.slow].cfg
            saved = (r.tokens_in + r.tokens_out) * (cost_per_token(slow)
                                                    - cost_per_token(out.dep.cfg))
            if saved > 0:
                m.count(m.cost_saved, route, variant).inc(saved)

    def record_error(self, call: Call | None, status: int) -> None:
        route = call.route.model if call is not None else ""
        self._metrics.count(self._metrics.requests, route, "", "", "", str(status)).inc()


class _Sink:
    """Writes relayed chunks straight to the client's transport, framed as aiohttp would
    (chunked for HTTP/1.1), counting SSE events on the way.

    Called by the upstream connection for each chunk as it arrives, so relaying costs no
    coroutine switch and no aiohttp writer call per chunk. Returns False when the
    client's write buffer is over ``_HIGH`` (the relay then awaits :meth:`drain`,
    pausing the upstream read) or the client has gone.
    """

    __slots__ = ("_chunked", "_clock", "_resp", "_transport", "events", "gone", "last_at",
                 "tail")

    def __init__(self, request: web.Request, resp: web.StreamResponse, first: bytes,
                 clock: Clock) -> None:
        self._transport, self._resp, self._clock = request.transport, resp, clock
        self._chunked = resp.headers.get("Transfer-Encoding") == "chunked"
        self.events, self.tail, self.last_at = first.count(b"data: "), first[-32:], clock()
        self.gone = False

    def __call__(self, chunk: bytes) -> bool:
        t = self._transport
        if not chunk:
            return True  # an empty chunk would end a chunked answer
        if t is None or t.is_closing():
            self.gone = True
            return False
        t.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk)
        self.events += chunk.count(b"data: ")
        self.tail = (self.tail + chunk)[-32:] if len(chunk) < 32 else chunk[-32:]
        self.last_at = self._clock()
        return t.get_write_buffer_size() < _HIGH

    async def drain(self) -> None:
        if self.gone:
            raise ConnectionResetError("client went away")
        await self._resp.drain()


_HIGH = 65536  # aiohttp's own drain threshold


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _usage(answer: dict[str, Any] | None, result: Result) -> None:
    usage = answer.get("usage") if answer else None
    if isinstance(usage, dict):
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        result.tokens_in = pt if isinstance(pt, int) else 0
        result.tokens_out = ct if isinstance(ct, int) else 0


def _sse_error(request_id: str) -> bytes:
    body = error_body("upstream stream ended before completion", "api_error",
                      "upstream_stream_broken", None, request_id)
    return b"data: " + body + b"\n\ndata: [DONE]\n\n"


async def _write_quietly(resp: web.StreamResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await resp.write(data)


async def _eof_quietly(resp: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()

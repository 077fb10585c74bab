"""Sending an outcome to the client, and recording what happened.

Streams are relayed chunk by chunk. A stream that breaks after bytes reached the client
(the backend died, or it ended without ``data: [DONE]``) ends with an explicit SSE error
event followed by ``[DONE]``, never a silently truncated answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tierserve.routing.dispatch import Call, Outcome
from tierserve.routing.errors import bad_gateway, error_body, looks_like_openai_error
from tierserve.routing.failover import release
from tierserve.routing.metrics import RouterMetrics
from tierserve.routing.routes import TierRuntime
from tierserve.routing.server import Request
from tierserve.routing.state import Clock
from tierserve.routing.tiering import fast_answer_saving, sse_from_answer
from tierserve.routing.upstream import UpstreamBroken

SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))


@dataclass(slots=True)
class Result:
    status: int
    tokens_in: int = 0
    tokens_out: int = 0
    ttft: float | None = None
    tpot: float | None = None
    added: float | None = None


class Commit:
    """Writes a stream's head and first chunk to the client as soon as the first chunk
    arrives: the upstream connection calls it (``Call.on_first``) from its read
    callback, so the first chunk does not wait for the request's task to be scheduled
    again behind everything else ready in the event loop. Never raises."""

    __slots__ = ("_clock", "_headers", "_request", "at", "done", "sent", "took")

    def __init__(self, request: Request, headers: Iterable[tuple[str, str]],
                 clock: Clock) -> None:
        self._request, self._headers, self._clock = request, list(headers), clock
        self.done, self.at, self.took, self.sent = False, 0.0, 0.0, 0

    def __call__(self, first: bytes) -> None:
        if self.done:
            return
        start = self._clock()
        req = self._request
        req.write(req.stream_head(200, self._headers) + req.frame(first))
        self.done, self.at, self.took = True, start, self._clock() - start
        self.sent = len(first)


class Responder:
    def __init__(self, *, metrics: RouterMetrics, clock: Clock, id_header: str) -> None:
        self._metrics, self._clock, self._id_header = metrics, clock, id_header

    def committer(self, call: Call, request: Request) -> Commit:
        return Commit(request, (*SSE_HEADERS, (self._id_header, call.request_id)),
                      self._clock)

    async def send(self, call: Call, out: Outcome, request: Request) -> None:
        if out.stream is not None:
            await self._relay(call, out, request)
            return
        b = out.buffered
        assert b is not None
        rid = (self._id_header, call.request_id)
        status = b.status
        if b.status >= 500 and not looks_like_openai_error(b.body):
            status = 502
            request.respond(502, bad_gateway(f"upstream answered {b.status}").body(
                call.request_id), "application/json", [rid])
        elif out.replay_sse and b.status == 200 and out.answer is not None:
            request.respond(200, sse_from_answer(out.answer, call.chat), SSE_HEADERS[0][1],
                            [SSE_HEADERS[1], rid])
        else:
            request.respond(b.status, b.body, b.content_type, [rid])
        result = Result(status)
        if b.status == 200:
            _usage(out.answer if out.answer is not None else _parse(b.body), result)
        now = self._clock()
        result.added = (now - call.started) - out.upstream_s
        if result.tokens_out:
            result.tpot = out.upstream_s / result.tokens_out
        self.record(call, out, result, now)

    async def _relay(self, call: Call, out: Outcome, request: Request) -> None:
        assert out.stream is not None and out.ep is not None
        stream = out.stream
        commit = call.on_first if isinstance(call.on_first, Commit) else None
        if commit is None:
            commit = self.committer(call, request)
        commit(stream.first)  # unless the upstream connection did already
        if len(stream.first) > commit.sent:  # what arrived after the first piece
            request.write(request.frame(stream.first[commit.sent:]))
        result = Result(200, ttft=commit.at - call.started)
        result.added = (out.upstream_start - call.started) + commit.took
        sink = _Sink(request, stream.first, self._clock)
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
            request.write(request.frame(sse_error(call.request_id)))
        except ConnectionError:
            result.status = 499  # the client went away; not the backend's fault
        finally:
            stream.close()
            release(out.dep, out.ep, ok, self._metrics)
            out.dep.gate.release()
        result.tokens_out = max(0, sink.events - 1)  # one event per token, minus [DONE]
        if result.tokens_out > 1:
            result.tpot = (sink.last_at - commit.at) / (result.tokens_out - 1)
        self.record(call, out, result, self._clock())
        request.end_stream()

    def record(self, call: Call, out: Outcome, r: Result, now: float) -> None:
        m, route, variant = self._metrics, call.route.model, out.variant.name
        out.extra["tokens"] = r.tokens_in + r.tokens_out
        m.requests.labels(route, variant, out.tier, out.dep.name, str(r.status)).inc()
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
            m.added.labels(route).observe(max(0.0, r.added))
        ok = r.status < 400
        call.route.ab.record(variant, ok=ok, e2e=e2e, ttft=r.ttft, tpot=r.tpot)
        tiers = out.variant.tiers
        if ok and tiers is not None:
            self._tier_spend(call, out, tiers, r.tokens_in + r.tokens_out)

    def _tier_spend(self, call: Call, out: Outcome, tiers: TierRuntime, tokens: int) -> None:
        """A slow answer's tokens feed the spend estimate; a fast answer counts what it
        saved against that spend (``tierserve_router_cost_saved_usd``)."""
        if out.tier == "slow":
            tiers.slow_spend.observe(tokens)
        elif out.tier == "fast":
            slow = call.deployments[tiers.cfg.slow].cfg
            saved = fast_answer_saving(out.dep.cfg, slow, tokens, tiers.slow_spend,
                                       tiers.cfg.slow_options.samples)
            if saved > 0:
                m = self._metrics
                m.count(m.cost_saved, call.route.model, out.variant.name).inc(saved)

    def record_error(self, call: Call | None, status: int, reason: str | None = None) -> None:
        route = call.route.model if call is not None else ""
        self._metrics.requests.labels(route, "", "", "", str(status)).inc()
        if call is None:  # refused before routing: a bad or missing key, a key's limit...
            self._metrics.count(self._metrics.rejected, reason or str(status)).inc()


class _Sink:
    """Writes relayed chunks straight to the client's transport, framed (chunked for
    HTTP/1.1), counting SSE events on the way.

    Called by the upstream connection with what each read brought, as it arrives, so
    relaying costs no coroutine switch per chunk and one write per read. The piece that
    ends a complete stream (``data: [DONE]`` seen) carries the answer's end in the same
    write; an incomplete one is left open for the relay to end with an SSE error event.
    Returns False when the client's write buffer is over ``_HIGH`` (the relay then
    awaits :meth:`drain`, pausing the upstream read) or the client has gone.
    """

    __slots__ = ("_chunked", "_clock", "_request", "_transport", "events", "gone", "last_at",
                 "tail")

    def __init__(self, request: Request, first: bytes, clock: Clock) -> None:
        transport = request.transport
        assert transport is not None  # set when the client connected
        self._request, self._transport, self._clock = request, transport, clock
        self._chunked = request.chunked
        self.events, self.tail, self.last_at = first.count(b"data: "), first[-32:], clock()
        self.gone = False

    def __call__(self, chunk: bytes) -> bool:
        t = self._transport
        if t.is_closing():
            self.gone = True
            return False
        self.events += chunk.count(b"data: ")
        self.tail = chunk[-32:] if len(chunk) >= 32 else (self.tail + chunk)[-32:]
        self.last_at = self._clock()
        t.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk)
        return t.get_write_buffer_size() < _HIGH

    def end(self, chunk: bytes) -> None:
        """The stream's last piece: written with the answer's end when it is complete
        (``[DONE]`` seen), else left open for the relay's SSE error event."""
        t = self._transport
        if t.is_closing():
            self.gone = True
            return
        if chunk:
            self.events += chunk.count(b"data: ")
            self.tail = (self.tail + chunk)[-32:]
            self.last_at = self._clock()
            if self._chunked:
                chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if b"[DONE]" in self.tail:
            chunk += self._request.ending()
        if chunk:
            t.write(chunk)

    async def drain(self) -> None:
        if self.gone:
            raise ConnectionResetError("client went away")
        await self._request.drain()


_HIGH = 65536  # the transport's default high-water mark (pause_writing)


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


def sse_error(request_id: str) -> bytes:
    """The events ending a stream that broke after bytes reached the client."""
    body = error_body("upstream stream ended before completion", "api_error",
                      "upstream_stream_broken", None, request_id)
    return b"data: " + body + b"\n\ndata: [DONE]\n\n"

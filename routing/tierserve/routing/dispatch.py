"""Serving one validated request: variant, tier, admission, failover, escalation.

The handler builds a :class:`Call`; :class:`Dispatcher` turns it into an
:class:`Outcome` (a buffered answer or an open stream, on one deployment) and
``respond`` sends exactly one answer to the client (see ``relay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tierserve.core.routerconfig import RequestOptions
from tierserve.routing.errors import RouterError
from tierserve.routing.failover import with_failover
from tierserve.routing.metrics import RouterMetrics
from tierserve.routing.routes import RouteRuntime, TierRuntime, VariantRuntime
from tierserve.routing.state import Clock, DeploymentRuntime, EndpointState
from tierserve.routing.tiering import (
    escalation_reason,
    majority,
    prompt_text,
    sample_bodies,
    strip_logprobs,
    summed_usage,
    with_logprobs,
    with_options,
)
from tierserve.routing.upstream import Backend, Buffered, Stream, UpstreamRequest


@dataclass(slots=True)
class Call:
    """One client request after validation."""

    request_id: str
    chat: bool
    path: str
    body: dict[str, Any]
    raw: bytes
    stream: bool
    started: float
    deadline: float
    route: RouteRuntime
    deployments: Mapping[str, DeploymentRuntime]
    sticky: str | None = None
    affinity: str | None = None
    forced_tier: str | None = None
    # For streams: writes the client's head and first chunk when the first chunk
    # arrives, from the upstream connection's read callback (``respond.Commit``).
    on_first: Callable[[bytes], None] | None = None


@dataclass(slots=True)
class Outcome:
    """Where the answer came from and what it is."""

    variant: VariantRuntime
    dep: DeploymentRuntime
    tier: str
    buffered: Buffered | None = None
    stream: Stream | None = None
    ep: EndpointState | None = None
    answer: dict[str, Any] | None = None  # parsed 200 body, when inspected
    replay_sse: bool = False  # a buffered answer the client asked to stream
    upstream_start: float = 0.0
    upstream_s: float = 0.0
    escalated_from: DeploymentRuntime | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Dispatcher:
    """Chooses variant and tier and obtains one outcome for a call."""

    def __init__(self, *, metrics: RouterMetrics, clock: Clock,
                 backends: Mapping[str, Backend]) -> None:
        self._metrics, self._clock, self._backends = metrics, clock, backends

    async def run(self, call: Call) -> Outcome:
        variant = call.route.choose(call.sticky)
        fallback = call.route.cfg.fallback
        if not fallback:
            return await self._variant(call, variant)
        try:
            out = await self._variant(call, variant)
        except RouterError as exc:
            if not exc.elsewhere:
                raise  # 4xx (and rate limits of the key) are never sent elsewhere
            return await self._fallback(call, variant, fallback, exc, _reason(exc))
        if out.buffered is not None and out.buffered.status >= 500:
            return await self._fallback(call, variant, fallback, out, "5xx")
        return out

    async def _variant(self, call: Call, variant: VariantRuntime) -> Outcome:
        if variant.tiers is None:
            assert variant.cfg.deployment is not None
            dep = call.deployments[variant.cfg.deployment]
            return await self._on(call, variant, dep, "none", stream=call.stream,
                                  deadline=call.deadline)
        return await self._tiered(call, variant, variant.tiers)

    async def _fallback(self, call: Call, variant: VariantRuntime, names: list[str],
                        failed: Outcome | RouterError, reason: str) -> Outcome:
        """Try ``names`` in order after the variant could not answer; one answer only.

        Returns the first outcome below 500; when all fail, the last failure (an outcome
        with the engine's 5xx answer, or the router error to raise).
        """
        last = failed
        for name in names:
            if self._clock() >= call.deadline:
                break
            dep = call.deployments[name]
            self._metrics.count(self._metrics.fallbacks, call.route.model, variant.name,
                                name, reason).inc()
            try:
                out = await self._on(call, variant, dep, "fallback", stream=call.stream,
                                     deadline=call.deadline)
            except RouterError as exc:
                if not exc.elsewhere:
                    raise
                last, reason = exc, _reason(exc)
                continue
            if out.buffered is None or out.buffered.status < 500:
                return out
            last, reason = out, "5xx"
        if isinstance(last, RouterError):
            raise last
        return last

    async def _on(self, call: Call, variant: VariantRuntime, dep: DeploymentRuntime, tier: str,
                  *, stream: bool, deadline: float,
                  body: dict[str, Any] | None = None) -> Outcome:
        """Admit to ``dep`` (hold, queue) and get an answer with failover."""
        if not dep.hold.ready.is_set():
            sfz = dep.cfg.scale_from_zero
            await dep.hold.wait(enabled=sfz.enabled, max_held=sfz.max_held, timeout_s=min(
                sfz.hold_timeout_s, max(0.001, deadline - self._clock())))
        if dep.gate.capacity is None:
            dep.gate.inflight += 1  # unlimited: skip the coroutine on the hot path
        else:
            await dep.gate.acquire()
        out = Outcome(variant, dep, tier, upstream_start=self._clock())
        try:
            req = self._request(call, dep, body, stream)
            backend = self._backends[dep.cfg.protocol]
            if stream:
                ep, res = await with_failover(
                    dep, lambda e, t: backend.open_stream(e, req, t), deadline=deadline,
                    affinity=call.affinity, clock=self._clock, metrics=self._metrics,
                    hold_on_success=True)
            else:
                ep, res = await with_failover(
                    dep, lambda e, t: backend.buffered(e, req, t), deadline=deadline,
                    affinity=call.affinity, clock=self._clock, metrics=self._metrics)
        except BaseException:
            dep.gate.release()
            raise
        out.ep, out.upstream_s = ep, self._clock() - out.upstream_start
        if isinstance(res, Buffered):
            out.buffered = res
            dep.gate.release()
        else:
            out.stream = res  # the gate is released when the relay ends
        return out

    def _request(self, call: Call, dep: DeploymentRuntime, body: dict[str, Any] | None,
                 stream: bool) -> UpstreamRequest:
        target = dep.cfg.upstream_model
        src = call.body if body is None else body
        raw: bytes | None = call.raw if body is None else None
        if src.get("model") != target or bool(src.get("stream")) != stream:
            src = {**src, "model": target, "stream": stream}
            raw = None
        return UpstreamRequest(call.path, src, raw, dep.cfg.connect_timeout_s,
                               call.route.cfg.stream_idle_timeout_s,
                               dep.cfg.triton if dep.cfg.protocol == "triton" else None,
                               call.on_first if stream else None)

    async def _decide(self, call: Call, variant: VariantRuntime, tiers: TierRuntime) -> str:
        if call.forced_tier is not None:
            tier, source = call.forced_tier, "header"
        else:
            text, turns = prompt_text(call.body)
            score = await tiers.classifier.score(text, turns)
            tiers.calibrator.observe(score)
            tier = "slow" if score >= tiers.calibrator.threshold else "fast"
            source = "classifier"
        self._metrics.count(self._metrics.tier_decisions, call.route.model, variant.name,
                            tier, source).inc()
        return tier

    async def _tiered(self, call: Call, variant: VariantRuntime, tiers: TierRuntime) -> Outcome:
        cfg = tiers.cfg
        fast, slow = call.deployments[cfg.fast], call.deployments[cfg.slow]
        if await self._decide(call, variant, tiers) == "slow":
            return await self._tier(call, variant, slow, "slow", cfg.slow_options,
                                    stream=call.stream, deadline=call.deadline)
        fast_deadline = min(call.deadline, self._clock() + cfg.fast_timeout_s)
        opts = cfg.fast_options
        buffered = not call.stream or cfg.stream_escalation == "buffer" or opts.samples > 1
        body = None if opts.empty else with_options(call.body, opts, call.chat)
        strip = (buffered and "low_confidence" in cfg.escalate_on
                 and not call.body.get("logprobs"))
        if strip:
            body = with_logprobs(call.body if body is None else body, call.chat)
        try:
            out = await self._tier(call, variant, fast, "fast", opts, stream=not buffered,
                                   deadline=fast_deadline, body=body)
        except RouterError as exc:
            reason = "timeout" if exc.status == 504 else "error"
            if exc.status < 500 or reason not in cfg.escalate_on:
                raise
            return await self._escalate(call, variant, fast, slow, reason, cfg.slow_options)
        why = self._inspect(out, cfg.escalate_on, tiers, strip=strip)
        if why is not None:
            return await self._escalate(call, variant, fast, slow, why, cfg.slow_options)
        out.replay_sse = call.stream and buffered
        return out

    async def _tier(self, call: Call, variant: VariantRuntime, dep: DeploymentRuntime,
                    tier: str, opts: RequestOptions, *, stream: bool, deadline: float,
                    body: dict[str, Any] | None = None) -> Outcome:
        """A tier's answer: its deployment asked with its request options (``body``: the
        upstream body when the caller built it already)."""
        if body is None and not opts.empty:
            body = with_options(call.body, opts, call.chat)
        if opts.samples == 1:
            return await self._on(call, variant, dep, tier, stream=stream, deadline=deadline,
                                  body=body)
        return await self._vote(call, variant, dep, tier, sample_bodies(
            call.body if body is None else body, opts.samples), deadline)

    async def _vote(self, call: Call, variant: VariantRuntime, dep: DeploymentRuntime,
                    tier: str, bodies: list[dict[str, Any]], deadline: float) -> Outcome:
        """Sampled answers in parallel; the majority's answer with all samples' usage."""
        results = await asyncio.gather(*(
            self._on(call, variant, dep, tier, stream=False, deadline=deadline, body=b)
            for b in bodies), return_exceptions=True)
        outs: list[Outcome] = []
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, RouterError):
                raise r
            if isinstance(r, Outcome):
                outs.append(r)
        voters = [(o, a) for o in outs if (a := _ok_answer(o)) is not None]
        if not voters:  # no sample answered: the first failure, as a single call gives
            if outs:
                return outs[0]
            raise next(r for r in results if isinstance(r, RouterError))
        answers = [a for _, a in voters]
        win, answer = voters[majority(answers, call.chat)]
        answer["usage"] = summed_usage(answers)
        assert win.buffered is not None
        win.buffered.body, win.answer, win.replay_sse = orjson.dumps(answer), answer, call.stream
        return win

    def _inspect(self, out: Outcome, reasons: frozenset[str], tiers: TierRuntime,
                 strip: bool) -> str | None:
        b = out.buffered
        if b is None:
            return None  # an open stream: committed
        if b.status >= 500:
            return "error" if "error" in reasons else None
        if b.status != 200:
            return None
        try:
            answer = orjson.loads(b.body)
        except orjson.JSONDecodeError:
            return "error" if "error" in reasons else None
        if not isinstance(answer, dict):
            return "error" if "error" in reasons else None
        reason = escalation_reason(answer, tiers.cfg)
        if reason is None and strip:
            strip_logprobs(answer)
            b.body = orjson.dumps(answer)
        out.answer = answer
        return reason

    async def _escalate(self, call: Call, variant: VariantRuntime, fast: DeploymentRuntime,
                        slow: DeploymentRuntime, reason: str, opts: RequestOptions) -> Outcome:
        self._metrics.count(self._metrics.escalations, call.route.model, variant.name,
                            reason).inc()
        out = await self._tier(call, variant, slow, "slow", opts, stream=call.stream,
                               deadline=call.deadline)
        out.escalated_from = fast
        return out


def _ok_answer(out: Outcome) -> dict[str, Any] | None:
    """The parsed body of a 200 answer, else None (it cannot vote)."""
    b = out.buffered
    if b is None or b.status != 200:
        return None
    try:
        answer = orjson.loads(b.body)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def _reason(exc: RouterError) -> str:
    """The ``reason`` label of a fallback caused by ``exc``."""
    return {429: "queue_full", 502: "connect", 503: "unavailable",
            504: "timeout"}.get(exc.status, "5xx")

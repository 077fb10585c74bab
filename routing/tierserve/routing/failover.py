"""Failover across replicas: retry before the first byte, within deadline and budget.

Connection errors and 5xx answers are retried on another replica (the scheduler
excludes the ones already tried); 4xx answers are returned at once, never retried
(the request itself is wrong, another replica would say the same). A timeout ends
the request with 504 because the deadline is what ran out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tierserve.routing.errors import RouterError, bad_gateway, gateway_timeout, unavailable
from tierserve.routing.metrics import RouterMetrics
from tierserve.routing.plugins.base import RequestInfo
from tierserve.routing.state import Clock, DeploymentRuntime, EndpointState
from tierserve.routing.upstream import Buffered, UpstreamConnectError, UpstreamTimeout

T = TypeVar("T")
Attempt = Callable[[EndpointState, float], Awaitable[T | Buffered]]


async def with_failover(dep: DeploymentRuntime, attempt: Attempt[T], *, deadline: float,
                        affinity: str | None, clock: Clock, metrics: RouterMetrics,
                        hold_on_success: bool = False) -> tuple[EndpointState, T | Buffered]:
    """Run ``attempt`` on picked replicas until one answers below 500.

    With ``hold_on_success`` a non-``Buffered`` result (an open stream) keeps its
    replica's outstanding count; the caller releases it with :func:`release`.
    Raises :class:`RouterError` (502/503/504) when no replica answered; returns the last
    5xx answer when every attempt got one, so the caller can pass an engine error on.
    """
    info = RequestInfo(now=0.0, affinity_key=affinity)
    dep.retry_budget.deposit()
    last: RouterError | tuple[EndpointState, Buffered] | None = None
    reason = ""
    for n in range(dep.cfg.retry.max_attempts):
        ep = await _next(dep, info, n, reason, deadline=deadline, clock=clock, metrics=metrics)
        if ep is None:
            break
        result = await _try(dep, ep, attempt, deadline - clock(), metrics, hold_on_success)
        if isinstance(result, RouterError):
            last, reason = result, "connect"
        elif isinstance(result, Buffered) and result.status >= 500:
            _failed(dep, ep, metrics, "5xx")
            last, reason = (ep, result), "5xx"
        else:
            dep.success(ep)
            return ep, result
    if last is None:
        raise unavailable(f"deployment {dep.name} has no ready replica")
    if isinstance(last, RouterError):
        raise last
    return last


async def _next(dep: DeploymentRuntime, info: RequestInfo, n: int, reason: str, *,
                deadline: float, clock: Clock, metrics: RouterMetrics) -> EndpointState | None:
    """The replica for attempt ``n``, or ``None`` when the budget or replicas ran out."""
    if deadline - clock() <= 0:
        raise gateway_timeout()
    if n and not dep.retry_budget.withdraw():
        metrics.count(metrics.rejected, "retry_budget").inc()
        return None
    ep = await dep.pick(info)
    if ep is not None:
        if n:
            metrics.count(metrics.retries, dep.name, reason).inc()
        info.exclude.add(ep.url)
    return ep


async def _try(dep: DeploymentRuntime, ep: EndpointState, attempt: Attempt[T],
               remaining: float, metrics: RouterMetrics,
               hold: bool) -> T | Buffered | RouterError:
    """One attempt; a connection failure comes back as the error to remember."""
    ep.outstanding += 1
    try:
        result = await attempt(ep, remaining)
    except UpstreamTimeout:
        ep.outstanding -= 1
        _failed(dep, ep, metrics, "timeout")
        raise gateway_timeout() from None
    except UpstreamConnectError:
        ep.outstanding -= 1
        _failed(dep, ep, metrics, "connect")
        return bad_gateway()
    except BaseException:
        ep.outstanding -= 1
        raise
    if isinstance(result, Buffered) or not hold:
        ep.outstanding -= 1
    return result


def release(dep: DeploymentRuntime, ep: EndpointState, ok: bool,
            metrics: RouterMetrics) -> None:
    """End a held stream: drop the outstanding count and record the outcome."""
    ep.outstanding -= 1
    if ok:
        dep.success(ep)
    else:
        _failed(dep, ep, metrics, "broken")


def _failed(dep: DeploymentRuntime, ep: EndpointState, metrics: RouterMetrics,
            kind: str) -> None:
    metrics.count(metrics.upstream_errors, dep.name, kind).inc()
    dep.failure(ep)

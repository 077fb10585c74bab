"""Runtime state that outlives configuration reloads: replicas, budgets, queues.

A :class:`DeploymentRuntime` is created once per deployment name and *updated* by each
applied configuration, so in-flight counters, ejections, held requests and queue
waiters carry over a reload; only endpoints that disappear from the config are dropped
(requests already on them finish on their own references).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tierserve.core.routerconfig import DeploymentConfig, OutlierConfig, RetryConfig
from tierserve.routing.admission import Gate, Hold, ScaleSignal
from tierserve.routing.plugins.balancing import Scheduler, build_scheduler
from tierserve.routing.plugins.base import RequestInfo

Clock = Callable[[], float]


class EndpointState:
    """One replica as the router sees it (satisfies the plugins' ``EndpointView``)."""

    __slots__ = ("base", "ejected_until", "ejections", "failures", "outstanding", "ready",
                 "running", "url", "waiting")

    def __init__(self, url: str, ready: bool) -> None:
        self.url = url
        self.base = url.rstrip("/")
        self.ready = ready
        self.outstanding = 0
        self.waiting = 0.0
        self.running = 0.0
        self.ejected_until = 0.0
        self.ejections = 0
        self.failures = 0


class RetryBudget:
    """Retries allowed: ``ratio`` per request plus ``min_per_s`` (Finagle-style).

    A budget, not a per-request count alone, keeps a failing backend from receiving
    ``max_attempts`` times the traffic exactly when it is least able to take it.
    """

    def __init__(self, cfg: RetryConfig, clock: Clock) -> None:
        self._cfg, self._clock = cfg, clock
        self._cap = max(10.0, cfg.min_retries_per_s * 10)
        self._tokens = self._cap
        self._last = clock()

    def deposit(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._cfg.budget_ratio)

    def withdraw(self) -> bool:
        now = self._clock()
        refill = (now - self._last) * self._cfg.min_retries_per_s
        self._tokens = min(self._cap, self._tokens + refill)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class DeploymentRuntime:
    """A deployment's replicas, scheduler, retry budget, queue and scale-from-zero hold."""

    def __init__(self, cfg: DeploymentConfig, *, clock: Clock, rng: random.Random,
                 signal: ScaleSignal, on_eject: Callable[[str], None]) -> None:
        self.name = cfg.name
        self._clock, self._rng, self._on_eject = clock, rng, on_eject
        self.gate = Gate()
        self.hold = Hold(cfg.name, signal)
        self.endpoints: list[EndpointState] = []
        self.cfg = cfg
        self.scheduler: Scheduler = build_scheduler("least-outstanding", {}, rng)
        self.retry_budget = RetryBudget(cfg.retry, clock)
        self.apply(cfg)

    def apply(self, cfg: DeploymentConfig) -> None:
        """Adopt a new config, keeping state of endpoints that stay."""
        old = {e.url: e for e in self.endpoints}
        endpoints = []
        for ep_cfg in cfg.endpoints:
            state = old.get(ep_cfg.base) or EndpointState(ep_cfg.base, ep_cfg.ready)
            state.ready = ep_cfg.ready
            endpoints.append(state)
        self.endpoints = endpoints
        if cfg.retry != self.cfg.retry:
            self.retry_budget = RetryBudget(cfg.retry, self._clock)
        self.cfg = cfg
        self.scheduler = build_scheduler(cfg.balancing.picker, cfg.balancing.scorers, self._rng)
        ready = self.ready_count()
        capacity = (None if cfg.max_inflight_per_replica is None
                    else cfg.max_inflight_per_replica * max(1, ready))
        self.gate.configure(capacity, cfg.max_queue, cfg.queue_timeout_s)
        self.hold.set_ready(ready > 0)

    def ready_count(self) -> int:
        return sum(1 for e in self.endpoints if e.ready)

    def ejected_count(self, now: float) -> int:
        return sum(1 for e in self.endpoints if e.ready and e.ejected_until > now)

    async def pick(self, info: RequestInfo) -> EndpointState | None:
        endpoints = self.endpoints
        if len(endpoints) == 1 and endpoints[0].ready and not info.exclude:
            return endpoints[0]  # nothing to choose (ejection would panic back to it)
        info.now = self._clock()
        ep = await self.scheduler.pick(info, endpoints)
        if ep is None and info.exclude:
            # Every replica was tried once: a second try on one beats giving up (a stale
            # keep-alive connection fails fast and is worth one more attempt).
            info.exclude.clear()
            ep = await self.scheduler.pick(info, self.endpoints)
        return ep

    def success(self, ep: EndpointState) -> None:
        ep.failures = 0

    def failure(self, ep: EndpointState) -> None:
        """Count a failure; eject after enough in a row, within the ejection cap."""
        ep.failures += 1
        out: OutlierConfig = self.cfg.outlier
        now = self._clock()
        if ep.failures < out.consecutive_failures or ep.ejected_until > now:
            return
        ready = self.ready_count()
        if (self.ejected_count(now) + 1) > out.max_ejected_fraction * ready:
            return  # the cap: never eject so many that the rest drown
        ep.ejections += 1
        ep.failures = 0
        ep.ejected_until = now + min(out.max_ejection_s, out.base_ejection_s * ep.ejections)
        self._on_eject(self.name)

"""Discrete-event simulation of a deployment: replicas, load balancer, autoscaler.

Each replica is an :class:`~tierserve.core.latency.EngineCore` (the same code the live
simulated engine runs) on a virtual clock. Events live in one heap keyed by time;
arrivals come from the sorted trace through a cursor so they never touch the heap.

* A replica steps back-to-back while it has work; a step's tokens become visible when
  it ends, and requests arriving mid-step join at the next step, as in the live engine.
* The load balancer sends each request to the ready replica with the fewest
  outstanding requests; with none ready the router holds it (scale-from-zero path).
* Scaling up starts a replica that is ready ``cold_start_s`` later and costs GPU time
  from its start; scaling down cancels starting replicas first, then drains the least
  loaded ready ones (no new requests; GPU time ends when their last request finishes).
* Every ``sample_s`` the replicas are scraped into a :class:`MetricSample` (gauges,
  rates and histogram deltas, like vLLM's /metrics); every ``interval_s`` the policy
  gets the last ``window_s`` of samples and its decision is applied.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from tierserve.autoscaler.sim.results import SimResult, TimelinePoint
from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.autoscaler.types import (
    GEN_TOKEN_BUCKETS,
    TPOT_BUCKETS_S,
    TTFT_BUCKETS_S,
    Decision,
    Histogram,
    Limits,
    MetricSample,
    MetricsWindow,
    PolicyContext,
    ReplicaSample,
    ScalerState,
    Slo,
)
from tierserve.core.capacity import ReplicaCapacity
from tierserve.core.latency import (
    EngineCore,
    LatencyProfile,
    SeqRequest,
    StepOutcome,
    host_noise,
)

_STEP, _READY, _SAMPLE, _TICK = 0, 1, 2, 3

PolicyFn = Callable[[PolicyContext], Decision]


@dataclass(frozen=True)
class SimSettings:
    slo: Slo
    limits: Limits
    capacity: ReplicaCapacity
    interval_s: float = 10.0
    sample_s: float = 2.0
    window_s: float = 300.0
    initial_replicas: int = 1
    drain_limit_s: float = 3600.0
    noise_seed: int = 0  # the host-noise RNG's seed (profiles with noise_sigma > 0)


@dataclass(eq=False)
class _Replica:
    core: EngineCore
    started_at: float
    ready_at: float
    ready: bool = False
    draining: bool = False
    busy: bool = False
    stopped_at: float | None = None
    outstanding: int = 0


@dataclass
class _Interval:
    """Counters since the previous scrape (what vLLM's counters' deltas would show)."""

    arrivals: int = 0
    prompt_tokens: int = 0
    gen_tokens: int = 0
    finished: int = 0
    finished_tokens: int = 0
    ttft: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BUCKETS_S) + 1))
    tpot: list[int] = field(default_factory=lambda: [0] * (len(TPOT_BUCKETS_S) + 1))
    answers: list[int] = field(default_factory=lambda: [0] * (len(GEN_TOKEN_BUCKETS) + 1))


class Simulation:
    """One run. Not reusable: construct, :meth:`run`, read the result."""

    def __init__(
        self,
        trace: Sequence[TraceRequest],
        profile: LatencyProfile,
        settings: SimSettings,
        policy: PolicyFn | None,
        *,
        policy_name: str = "",
        cold_start_s: float | None = None,
    ) -> None:
        self.trace, self.profile, self.s, self.policy = trace, profile, settings, policy
        self.name = policy_name
        self.cold_start = settings.limits.cold_start_s if cold_start_s is None else cold_start_s
        n = len(trace)
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.replicas: list[_Replica] = []
        self.held: deque[int] = deque()
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.done = 0
        self.iv = _Interval()
        self.window: deque[MetricSample] = deque()
        self.timeline: list[TimelinePoint] = []
        self.changes: list[tuple[float, int, int, str]] = []
        self.state = ScalerState(settings.initial_replicas, 0)
        self.now = 0.0
        # one host: its contention slows every replica at once (seeded: runs repeat)
        self.noise = host_noise(profile, settings.noise_seed)

    # -- events -------------------------------------------------------------------
    def _push(self, t: float, kind: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, payload))

    def run(self) -> SimResult:
        for _ in range(self.s.initial_replicas):
            self._start_replica(0.0, cold=0.0)
        if self.policy is not None:
            self._push(self.s.sample_s, _SAMPLE, None)
            self._push(self.s.interval_s, _TICK, None)
        trace, n, i = self.trace, len(self.trace), 0
        heap = self.heap
        # a policy that never serves held requests must not spin forever
        deadline = (trace[-1].arrival_s if n else 0.0) + self.s.drain_limit_s
        while self.done < n and self.now <= deadline:
            t_arr = trace[i].arrival_s if i < n else math.inf
            if not heap and i >= n:
                break
            if heap and heap[0][0] <= t_arr:
                t, _, kind, payload = heapq.heappop(heap)
                self.now = t
                self._handle(kind, payload, t)
            else:
                self.now = t_arr
                self._arrive(i, t_arr)
                i += 1
        return self._result()

    def _handle(self, kind: int, payload: object, t: float) -> None:
        if kind == _STEP:
            rep, outcome = cast(tuple[_Replica, StepOutcome], payload)
            self._step_end(rep, outcome, t)
        elif kind == _READY:
            self._ready(payload, t)  # type: ignore[arg-type]
        elif kind == _SAMPLE:
            self._sample(t)
            self._push(t + self.s.sample_s, _SAMPLE, None)
        else:
            self._tick(t)
            self._push(t + self.s.interval_s, _TICK, None)

    # -- requests -----------------------------------------------------------------
    def _arrive(self, idx: int, t: float) -> None:
        self.iv.arrivals += 1  # its prompt counts once prefilled (_step_end), as vLLM's
        if not self._dispatch(idx, t):
            self.held.append(idx)

    def _dispatch(self, idx: int, t: float) -> bool:
        best: _Replica | None = None
        for rep in self.replicas:
            if not rep.ready or rep.draining:
                continue
            if best is None or rep.outstanding < best.outstanding:
                best = rep
        if best is None:
            return False
        req = self.trace[idx]
        best.core.submit(SeqRequest(str(idx), req.prompt_tokens, req.output_tokens))
        best.outstanding += 1
        if not best.busy:
            self._begin_step(best, t)
        return True

    def _begin_step(self, rep: _Replica, t: float) -> None:
        rep.busy = True
        outcome = rep.core.step()
        slow = self._neighbour_factor(rep)
        end = t + outcome.duration_s * self.noise.factor(t) * slow
        self._push(end, _STEP, (rep, outcome))

    def _neighbour_factor(self, rep: _Replica) -> float:
        """One host: the other replicas busy when a step starts (in a step of their own;
        a replica whose step ends now and has more work stays busy) slow it, and so do
        those still starting: on shared CPU cores a start (a worker's imports, the model
        load) takes the cores the serving replicas use (measured, docs/engine.md sixth and
        seventh checks: a replica serving alone while a second started decoded at 25.9 ms
        a token, where this machine's fitted profile gives 19.3 alone)."""
        if not self.profile.neighbour_busy_slowdown:
            return 1.0  # accelerators: skip the scan
        others = [r for r in self.replicas if r is not rep and r.stopped_at is None]
        busy = sum(1 for r in others if r.ready and r.busy)
        starting = sum(1 for r in others if not r.ready)
        return self.profile.neighbour_factor(len(others), busy, starting)

    def _step_end(self, rep: _Replica, outcome: StepOutcome, t: float) -> None:
        iv, trace = self.iv, self.trace
        iv.gen_tokens += len(outcome.token_ids)
        for rid in outcome.first_token_ids:
            idx = int(rid)
            self.first[idx] = t
            iv.prompt_tokens += trace[idx].prompt_tokens  # counted once prefilled, as vLLM
            ttft = t - trace[idx].arrival_s
            iv.ttft[bisect_left(TTFT_BUCKETS_S, ttft)] += 1
        for rid in outcome.finished_ids:
            idx = int(rid)
            self.finish[idx] = t
            out = trace[idx].output_tokens
            tpot = (t - self.first[idx]) / (out - 1) if out > 1 else 0.0
            iv.tpot[bisect_left(TPOT_BUCKETS_S, tpot)] += 1
            iv.finished += 1
            iv.finished_tokens += out
            iv.answers[bisect_left(GEN_TOKEN_BUCKETS, out)] += 1
            rep.outstanding -= 1
            self.done += 1
        if rep.core.has_work():
            self._begin_step(rep, t)
            return
        rep.busy = False
        if rep.draining:
            rep.stopped_at = t

    # -- replicas -----------------------------------------------------------------
    def _start_replica(self, t: float, cold: float) -> None:
        rep = _Replica(EngineCore(self.profile), started_at=t, ready_at=t + cold)
        self.replicas.append(rep)
        if cold <= 0:
            self._ready(rep, t)
        else:
            self._push(t + cold, _READY, rep)

    def _ready(self, rep: _Replica, t: float) -> None:
        if rep.stopped_at is not None:
            return  # cancelled while starting
        rep.ready = True
        while self.held and self._dispatch(self.held[0], t):
            self.held.popleft()

    def _live(self) -> list[_Replica]:
        return [r for r in self.replicas if r.stopped_at is None and not r.draining]

    def _scale(self, desired: int, t: float) -> None:
        live = self._live()
        for _ in range(desired - len(live)):
            self._start_replica(t, self.cold_start)
        if desired >= len(live):
            return
        # cancel the youngest starting replicas first: they have served nothing yet
        victims = sorted(live, key=lambda r: (r.ready, r.outstanding, -r.started_at))
        for rep in victims[: len(live) - desired]:
            rep.draining = True
            if not rep.ready or not rep.core.has_work():
                rep.stopped_at = t

    # -- metrics and policy ---------------------------------------------------------
    def _sample(self, t: float) -> None:
        iv, dt = self.iv, self.s.sample_s
        reps = tuple(
            ReplicaSample(r.core.num_running, r.core.num_waiting, r.core.kv_usage)
            for r in self.replicas
            if r.ready and r.stopped_at is None
        )
        sample = MetricSample(
            t=t,
            replicas=reps,
            arrival_rate=iv.arrivals / dt,
            prompt_token_rate=iv.prompt_tokens / dt,
            gen_token_rate=iv.gen_tokens / dt,
            ttft=Histogram(TTFT_BUCKETS_S, tuple(iv.ttft)),
            tpot=Histogram(TPOT_BUCKETS_S, tuple(iv.tpot)),
            held=len(self.held),
            finish_rate=iv.finished / dt,
            finished_tokens_rate=iv.finished_tokens / dt,
            gen_tokens=Histogram(GEN_TOKEN_BUCKETS, tuple(iv.answers)),
        )
        self.iv = _Interval()
        self.window.append(sample)
        while self.window and self.window[0].t <= t - self.s.window_s:
            self.window.popleft()
        live = self._live()
        ready = sum(1 for r in live if r.ready)
        self.timeline.append(TimelinePoint(t, sample.arrival_rate, len(live), ready))

    def _tick(self, t: float) -> None:
        assert self.policy is not None
        live = self._live()
        current, ready = len(live), sum(1 for r in live if r.ready)
        state = ScalerState(
            current, ready, self.state.last_scale_up_at, self.state.last_scale_down_at,
            self.state.idle_since, self.state.history, self.state.memo,
        )  # fmt: skip
        ctx = PolicyContext(
            MetricsWindow(tuple(self.window)), self.s.slo, self.s.capacity, self.s.limits, state, t
        )
        decision = self.policy(ctx)
        self.state = decision.state
        if decision.desired_replicas != current:
            self.changes.append((t, current, decision.desired_replicas, decision.reason))
            self._scale(decision.desired_replicas, t)

    def _result(self) -> SimResult:
        end = self.now
        gpu_s = sum((r.stopped_at if r.stopped_at is not None else end) - r.started_at
                    for r in self.replicas)  # fmt: skip
        return SimResult(
            policy=self.name,
            trace=tuple(self.trace),
            first_token_s=tuple(self.first),
            finish_s=tuple(self.finish),
            gpu_seconds=gpu_s,
            end_s=end,
            timeline=tuple(self.timeline),
            changes=tuple(self.changes),
        )

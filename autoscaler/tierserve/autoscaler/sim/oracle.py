"""The oracle lower bound: fewest replica-seconds that meet the SLO with instant scaling.

Method (documented in docs/autoscaler.md):

1. Cut the trace into buckets of ``bucket_s`` seconds.
2. For each bucket, simulate its requests on ``n`` replicas that are all ready (no cold
   start), preceded by the previous ``warmup_s`` of the trace so the bucket starts with
   the queue it would really inherit; score only the bucket's own requests.
3. The bucket needs the smallest ``n`` for which the share of *feasible* requests
   meeting both targets reaches the SLO's target attainment. A request is infeasible when
   it would miss even alone on an idle replica (a prompt too long for the TTFT target):
   no replica count fixes it, so it must not drive the count to the maximum.
4. The bound is ``sum(n_b) * bucket_s``. The search starts at the previous bucket's count
   and walks down or up, since neighbouring buckets need similar counts.

Knowing the future and scaling instantly, no online policy can do better except by
tolerating misses inside a bucket that this bound refuses, so it is a fair floor; the
``oracle`` policy replays the schedule in the full simulation to show its attainment.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.autoscaler.types import Slo
from tierserve.core.latency import LatencyProfile


@dataclass(frozen=True)
class OracleSchedule:
    bucket_s: float
    replicas: tuple[int, ...]

    @property
    def gpu_hours(self) -> float:
        return sum(self.replicas) * self.bucket_s / 3600

    @property
    def peak(self) -> int:
        return max(self.replicas, default=0)


def feasible(req: TraceRequest, profile: LatencyProfile, slo: Slo) -> bool:
    """Would this request meet both targets alone on an idle replica?"""
    chunks = math.ceil(req.prompt_tokens / profile.max_prefill_tokens_per_step)
    ttft_ms = chunks * profile.step_ms(1, 0) + req.prompt_tokens * profile.prefill_ms_per_token
    return ttft_ms <= slo.ttft_p95_ms and profile.step_ms(1, 0) <= slo.tpot_p95_ms


def _bucket_ok(
    trace: Sequence[TraceRequest],
    lo: int,
    hi: int,
    n: int,
    profile: LatencyProfile,
    settings: SimSettings,
    mask: Sequence[bool],
) -> bool:
    """Do the feasible requests of trace[lo:hi] meet the target on n instant replicas?"""
    result = Simulation(trace, profile, replace(settings, initial_replicas=n), None).run()
    met = result.met(settings.slo)
    first = len(trace) - (hi - lo)
    scored = [met[i] for i in range(first, len(trace)) if mask[lo + i - first]]
    if not scored:
        return True
    return sum(scored) / len(scored) >= settings.slo.target_attainment


def oracle_schedule(
    trace: Sequence[TraceRequest],
    profile: LatencyProfile,
    settings: SimSettings,
    *,
    bucket_s: float = 60.0,
    warmup_s: float = 30.0,
) -> OracleSchedule:
    if not trace:
        return OracleSchedule(bucket_s, ())
    arrivals = [r.arrival_s for r in trace]
    mask = [feasible(r, profile, settings.slo) for r in trace]
    buckets = math.floor(arrivals[-1] / bucket_s) + 1
    max_n = settings.limits.max_replicas
    out: list[int] = []
    n = 1
    for b in range(buckets):
        start, end = b * bucket_s, (b + 1) * bucket_s
        lo, hi = bisect_left(arrivals, start), bisect_left(arrivals, end)
        if lo == hi:
            out.append(0)
            continue
        w = bisect_left(arrivals, start - warmup_s)
        t0 = arrivals[w]
        sub = [replace(r, arrival_s=r.arrival_s - t0) for r in trace[w:hi]]

        def ok(k: int, sub: list[TraceRequest] = sub, lo: int = lo, hi: int = hi) -> bool:
            return _bucket_ok(sub, lo, hi, k, profile, settings, mask)

        n = max(1, n)
        if ok(n):
            while n > 1 and ok(n - 1):
                n -= 1
        else:
            while n < max_n and not ok(n + 1):
                n += 1
            n = min(max_n, n + 1)
        out.append(n)
    return OracleSchedule(bucket_s, tuple(out))

"""Fit the busy-neighbour interference of the llama.cpp CPU profile from an open loop.

The closed-loop calibration (:mod:`tierserve.dev.replay.calibrate`) sends one request at
a time per replica while a client keeps every other replica busy, so every request runs
next to a busy neighbour. Under an open-loop load a request's decode overlaps a busy
neighbour sometimes wholly, sometimes not at all
(:meth:`~tierserve.core.latency.LatencyProfile.neighbour_factor`). This phase sends
seeded Poisson arrivals of random-token prompts at a set utilisation of the replicas
(lengths and seed of its own, not the replay slice's: fitting to the slice would make the
comparison circular), measures for each request the share of its decode during which the
other replicas were busy (prefilling or decoding a request of their own), and fits
``ITL = step x (1 + slowdown x share)`` by least squares. The intercept is the decode
step of a replica alone; the closed-loop prefill cost, measured beside a busy neighbour,
is divided by ``1 + slowdown`` to give the prefill of a replica alone. The host noise
stays the closed loop's: there the neighbour is always busy, so its spread is noise with
the interference held constant (an earlier version refitted ``sigma`` on the open loop's
requests beside no busy neighbour: 22 of 82, taken at the host's quietest moments, they
gave 0.14 against the closed loop's 0.18, and the replay's TPOT tail came out short,
docs/engine.md). Where the slope is not at least two standard errors above 0 there is
no slowdown to fit, and the closed-loop profile is kept with the term at 0.

(An earlier version regressed on the share of neighbours *prefilling*; on the quiet
machine the busy share explained the ITLs twice as well, r2 0.37 against 0.19, and with
both regressors the prefill share's coefficient turned negative.)

A replica serves one sequence at a time, so any request that overlaps a request's
decode ran on another replica: no replica assignment is needed. A request's busy span
starts at its estimated prefill start (its first token less the profile's prefill time,
not before it was sent) and ends at its last token.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from tierserve.autoscaler.sim.trace import Trace, TraceRequest
from tierserve.core.latency import LatencyProfile
from tierserve.dev.replay.client import Outcome

QUIET_SHARE = 0.05  # a request whose decode overlapped at most this much counts as quiet
MIN_T = 2.0  # a slowdown is fitted only when its slope is this many standard errors above 0


@dataclass(frozen=True)
class OpenLoop:
    """The open-loop phase: Poisson arrivals at ``utilisation`` of ``replicas``, lengths
    uniform in the given inclusive ranges, ``duration_s`` long, seeded."""

    utilisation: float = 0.6
    duration_s: float = 150.0
    seed: int = 5
    prompts: tuple[int, int] = (16, 160)
    outputs: tuple[int, int] = (16, 48)

    def __post_init__(self) -> None:
        if not 0 < self.utilisation < 1 or self.duration_s <= 0:
            raise ValueError(f"open loop needs 0 < utilisation < 1 and a duration > 0; got "
                             f"{self.utilisation}, {self.duration_s}")
        (p_lo, p_hi), (o_lo, o_hi) = self.prompts, self.outputs
        if not (1 <= p_lo <= p_hi and 2 <= o_lo <= o_hi):
            raise ValueError(f"bad length ranges: prompts {p_lo}..{p_hi} (from 1), "
                             f"outputs {o_lo}..{o_hi} (from 2, for a TPOT)")

    def rate(self, profile: LatencyProfile, replicas: int) -> float:
        """Arrivals per second that keep ``replicas`` busy ``utilisation`` of the time."""
        prompt, output = statistics.fmean(self.prompts), statistics.fmean(self.outputs)
        service_s = (profile.step_ms(1, round(prompt))
                     + (output - 1) * profile.step_ms(1, 0)) / 1000
        return self.utilisation * replicas / service_s

    def trace(self, rate: float) -> Trace:
        rnd = random.Random(self.seed)
        out: list[TraceRequest] = []
        t = rnd.expovariate(rate)
        while t < self.duration_s:
            out.append(TraceRequest(t, rnd.randint(*self.prompts), rnd.randint(*self.outputs)))
            t += rnd.expovariate(rate)
        return tuple(out)


@dataclass(frozen=True)
class Timed:
    """One finished request on the shared clock: sent, first token, last token (s)."""

    sent_s: float
    first_s: float
    end_s: float
    prompt: int
    output: int

    @property
    def itl_ms(self) -> float:
        return 1000 * (self.end_s - self.first_s) / (self.output - 1)


def timed(trace: Sequence[TraceRequest], outcomes: Sequence[Outcome]) -> list[Timed]:
    """The requests that finished with every token (failed ones carry NaN times)."""
    return [Timed(o.due_s, o.first_s, o.end_s, r.prompt_tokens, r.output_tokens)
            for r, o in zip(trace, outcomes, strict=True)
            if not o.error and not math.isnan(o.first_s) and o.tokens == r.output_tokens > 1]


def overlap_shares(requests: Sequence[Timed], profile: LatencyProfile,
                   replicas: int) -> list[float]:
    """Per request, the mean share of the other ``replicas - 1`` replicas that were busy
    during its decode (0..1)."""
    others = replicas - 1
    if others < 1:
        raise ValueError(f"interference needs >= 2 replicas; got {replicas}")
    spans = [(max(r.sent_s, r.first_s - profile.step_ms(1, r.prompt) / 1000), r.end_s)
             for r in requests]
    shares = []
    for i, r in enumerate(requests):
        cuts = [(max(a, r.first_s), min(b, r.end_s)) for j, (a, b) in enumerate(spans)
                if j != i and a < r.end_s and b > r.first_s]
        shares.append(_covered(cuts, others) / (others * (r.end_s - r.first_s)))
    return shares


def _covered(spans: Sequence[tuple[float, float]], cap: int) -> float:
    """Integral over time of the number of open spans, at most ``cap`` at a time (the
    estimated spans of one replica's consecutive requests may touch)."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    total, count, at = 0.0, 0, 0.0
    for t, step in edges:
        total += min(count, cap) * (t - at)
        count, at = count + step, t
    return total


@dataclass(frozen=True)
class InterferenceFit:
    profile: LatencyProfile
    requests: int
    quiet: int
    mean_share: float
    r2: float

    def __str__(self) -> str:
        p = self.profile
        return (f"# open loop: {self.requests} requests, {self.quiet} beside no busy "
                f"neighbour, mean share {self.mean_share:.2f}, r2 {self.r2:.2f}: step alone "
                f"{p.step_ms_per_seq} ms, prefill alone {p.prefill_ms_per_token} ms/token, "
                f"neighbour_busy_slowdown {p.neighbour_busy_slowdown}, noise_sigma "
                f"{p.noise_sigma}")


def _slope_error(xs: Sequence[float], ys: Sequence[float], slope: float,
                 intercept: float) -> float:
    """Standard error of a least-squares slope."""
    mx = statistics.fmean(xs)
    sxx = sum((x - mx) ** 2 for x in xs)
    rss = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return math.sqrt(rss / (len(xs) - 2) / sxx)


def fit_interference(requests: Sequence[Timed], profile: LatencyProfile,
                     replicas: int) -> InterferenceFit:
    """``profile`` (the closed-loop fit, beside a busy neighbour) with the alone decode
    step and prefill and the slowdown these requests show (its noise sigma kept)."""
    shares = overlap_shares(requests, profile, replicas)
    itls = [r.itl_ms for r in requests]
    if len(requests) < 10 or statistics.pvariance(shares) < 1e-4:
        raise ValueError(f"fitting interference needs >= 10 requests whose overlap varies; "
                         f"got {len(requests)}, overlap variance "
                         f"{statistics.pvariance(shares) if shares else 0:.2g}")
    slope, step = statistics.linear_regression(shares, itls)
    r2 = statistics.correlation(shares, itls) ** 2
    quiet = [itl for itl, f in zip(itls, shares, strict=True) if f <= QUIET_SHARE]
    if step <= 0 or slope <= MIN_T * _slope_error(shares, itls, slope, step):
        # no slowdown to see (a slope within noise of 0): the intercept would only be
        # this window's mean ITL, so the closed-loop fit of the step and the noise stands
        return InterferenceFit(dataclasses.replace(profile, neighbour_busy_slowdown=0.0),
                               len(requests), len(quiet),
                               round(statistics.fmean(shares), 3), round(r2, 3))
    slowdown = slope / step
    fitted = dataclasses.replace(profile, step_ms_per_seq=round(step, 2),
                                 prefill_ms_per_token=round(
                                     profile.prefill_ms_per_token / (1 + slowdown), 3),
                                 neighbour_busy_slowdown=round(slowdown, 3))
    return InterferenceFit(fitted, len(requests), len(quiet),
                           round(statistics.fmean(shares), 3), round(r2, 3))

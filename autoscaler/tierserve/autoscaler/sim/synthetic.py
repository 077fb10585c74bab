"""Seeded synthetic traces of the shapes users run, generated on the fly (no data files).

Each shape is a rate curve (requests per second over time) and two length
distributions (prompt and answer tokens), each given by a few of its quantiles
(:class:`Quantiles`). Arrivals are a non-homogeneous Poisson process on the curve
(thinning), so a seed fixes the whole trace. The shapes:

* ``prefill-heavy``: long prompts (median about 1,500 tokens, p90 about 5,200, p99 about
  7,400), short answers (median 13, p90 about 55), and a rate that swings by two orders of
  magnitude within minutes (a few to about 585 per minute, median about 160): code
  completion or RAG behind a bursty client population;
* ``long-answers``: steady Poisson traffic of short prompts and long answers (median
  600 tokens), the decode-bound case;
* ``diurnal``: a day's swing compressed into the run (night at 15% of the peak),
  conversation-like lengths;
* ``flash-crowd``: steady conversation traffic that jumps sixfold within half a minute
  and decays over a quarter of an hour.

The lengths are the trace's, the rate curve is the shape; ``--rate-scale`` still
multiplies it (``tierserve sim --synthetic prefill-heavy --rate-scale 2``).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tierserve.autoscaler.sim.trace import Trace, TraceRequest, thinning

RateFn = Callable[[float], float]  # requests per second at a time (seconds)


@dataclass(frozen=True)
class Quantiles:
    """A distribution given by quantile knots ``(q, value)``, from q=0 to q=1, sampled
    by inverse transform with the log of the value linear between knots: the stated
    quantiles hold exactly (up to sampling noise), and the tail ends at the last knot."""

    knots: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        qs = [q for q, _ in self.knots]
        vs = [v for _, v in self.knots]
        if qs[0] != 0.0 or qs[-1] != 1.0 or qs != sorted(qs) or vs != sorted(vs) or vs[0] < 1:
            raise ValueError(f"quantile knots must rise from q=0 to q=1, values >= 1: {self.knots}")

    def value(self, u: float) -> int:
        """The value at quantile ``u`` in [0, 1]."""
        qs = [q for q, _ in self.knots]
        i = min(len(qs) - 1, max(1, bisect.bisect_right(qs, u)))
        (q0, v0), (q1, v1) = self.knots[i - 1], self.knots[i]
        share = (u - q0) / (q1 - q0) if q1 > q0 else 1.0
        return max(1, round(math.exp(math.log(v0) + share * (math.log(v1) - math.log(v0)))))

    def sample(self, rng: random.Random) -> int:
        return self.value(rng.random())


# Conversation-like lengths (the Azure 2023 conversation trace: prompt median 1,020,
# p90 2,734; answer median 129, p90 424).
CONV_PROMPT = Quantiles(((0.0, 20), (0.1, 210), (0.5, 1020), (0.9, 2730), (0.99, 4140),
                         (1.0, 8000)))  # fmt: skip
CONV_ANSWER = Quantiles(((0.0, 2), (0.1, 54), (0.5, 130), (0.9, 425), (0.99, 600), (1.0, 1000)))
PREFILL_PROMPT = Quantiles(((0.0, 40), (0.1, 300), (0.5, 1500), (0.9, 5200), (0.99, 7400),
                            (1.0, 8000)))  # fmt: skip
PREFILL_ANSWER = Quantiles(((0.0, 1), (0.1, 3), (0.5, 13), (0.9, 55), (0.99, 180), (1.0, 400)))
LONG_PROMPT = Quantiles(((0.0, 10), (0.5, 200), (0.9, 800), (1.0, 2000)))
LONG_ANSWER = Quantiles(((0.0, 50), (0.1, 200), (0.5, 600), (0.9, 1400), (1.0, 2000)))


def arrivals(
    rate_at: RateFn, peak: float, duration_s: float, rng: random.Random
) -> list[float]:
    """All arrival times of :func:`~tierserve.autoscaler.sim.trace.thinning`, drawn
    before any length (``build`` samples lengths after)."""
    return list(thinning(rate_at, peak, duration_s, rng))


def build(
    times: Sequence[float], prompt: Quantiles, answer: Quantiles, rng: random.Random
) -> Trace:
    return tuple(TraceRequest(t, prompt.sample(rng), answer.sample(rng)) for t in times)


def _step_curve(levels: Sequence[float], step_s: float) -> Callable[[float], float]:
    """Piecewise-linear rate through ``levels`` (requests/s), one every ``step_s``."""

    def rate_at(t: float) -> float:
        i = min(len(levels) - 2, int(t // step_s))
        share = min(1.0, (t - i * step_s) / step_s)
        return levels[i] + share * (levels[i + 1] - levels[i])

    return rate_at


def bursty_levels(
    duration_s: float,
    rng: random.Random,
    *,
    step_s: float = 10.0,
    median_per_min: float = 150.0,
    peak_per_min: float = 585.0,
    floor_per_min: float = 2.0,
) -> list[float]:
    """A rate swinging by two orders of magnitude within minutes, in requests/s per
    ``step_s``: a mean-reverting log-rate (Ornstein-Uhlenbeck, 2-minute memory) around
    the median, with bursts (x2.5-4 for 1-3 minutes, about every 7 minutes) and lulls
    (down to a few a minute for 1-3 minutes, about every 10 minutes), each reached within
    20-60 s, capped at the peak."""
    n = int(duration_s // step_s) + 2
    tau, sigma = 120.0, 0.45
    keep = math.exp(-step_s / tau)
    x = rng.gauss(0.0, sigma)
    factor = [1.0] * n
    for every_s, low, high in ((420.0, 2.5, 4.0), (600.0, 0.0, 0.0)):
        t = rng.expovariate(1 / every_s)
        while t < duration_s:
            length, ramp = rng.uniform(60.0, 180.0), rng.uniform(20.0, 60.0)
            f = rng.uniform(low, high)
            for i in range(int(t // step_s), min(n, int((t + length + 2 * ramp) // step_s) + 1)):
                # a trapezoid: the rate moves to the burst (or lull) over ``ramp`` seconds
                edge = min(
                    1.0, (i * step_s - t) / ramp, (t + length + 2 * ramp - i * step_s) / ramp
                )
                factor[i] = 1.0 + (f - 1.0) * max(0.0, edge)
            t += length + 2 * ramp + rng.expovariate(1 / every_s)
    levels = []
    for f in factor:
        x = x * keep + rng.gauss(0.0, sigma * math.sqrt(1 - keep**2))
        per_min = max(floor_per_min, min(peak_per_min, median_per_min * math.exp(x) * f))
        levels.append(per_min / 60)
    return levels


def prefill_heavy(*, duration_s: float = 3600.0, seed: int = 0) -> Trace:
    rng = random.Random(seed)
    levels = bursty_levels(duration_s, rng)
    times = arrivals(_step_curve(levels, 10.0), max(levels), duration_s, rng)
    return build(times, PREFILL_PROMPT, PREFILL_ANSWER, rng)


def long_answers(*, duration_s: float = 3600.0, seed: int = 0, per_min: float = 1500.0) -> Trace:
    rng = random.Random(seed)
    rate = per_min / 60
    times = arrivals(lambda _t: rate, rate, duration_s, rng)
    return build(times, LONG_PROMPT, LONG_ANSWER, rng)


def diurnal_day(
    *,
    duration_s: float = 3600.0,
    seed: int = 0,
    peak_per_min: float = 900.0,
    night_share: float = 0.15,
) -> Trace:
    """One day compressed into ``duration_s``: the rate starts at night, peaks midway."""
    rng = random.Random(seed)
    peak = peak_per_min / 60

    def rate_at(t: float) -> float:
        day = 0.5 - 0.5 * math.cos(2 * math.pi * t / duration_s)  # 0 at night, 1 at noon
        return peak * (night_share + (1 - night_share) * day)

    return build(arrivals(rate_at, peak, duration_s, rng), CONV_PROMPT, CONV_ANSWER, rng)


def flash_crowd(
    *,
    duration_s: float = 3600.0,
    seed: int = 0,
    base_per_min: float = 200.0,
    jump: float = 6.0,
    at_s: float = 1200.0,
    rise_s: float = 30.0,
    decay_s: float = 900.0,
) -> Trace:
    """Steady traffic that jumps ``jump``-fold within ``rise_s`` at ``at_s``, then decays
    back exponentially (time constant ``decay_s / 3``)."""
    rng = random.Random(seed)
    base = base_per_min / 60

    def rate_at(t: float) -> float:
        if t < at_s:
            return base
        rise = min(1.0, (t - at_s) / rise_s)
        decay = math.exp(-3 * max(0.0, t - at_s - rise_s) / decay_s)
        return base * (1 + (jump - 1) * rise * decay)

    return build(arrivals(rate_at, base * jump, duration_s, rng), CONV_PROMPT, CONV_ANSWER, rng)


SHAPES: Mapping[str, Callable[..., Trace]] = {
    "prefill-heavy": prefill_heavy,
    "long-answers": long_answers,
    "diurnal": diurnal_day,
    "flash-crowd": flash_crowd,
}


def synthetic(name: str, *, seed: int = 0, duration_s: float = 3600.0) -> Trace:
    """The named shape, seeded; an unknown name lists the known ones."""
    try:
        make = SHAPES[name]
    except KeyError:
        raise ValueError(
            f"unknown synthetic trace {name!r}; choose one of {', '.join(SHAPES)}"
        ) from None
    return make(duration_s=duration_s, seed=seed)

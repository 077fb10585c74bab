"""Signals derived from a metrics window: demand in replica units, trend, attainment.

Pure helpers used by the SLO policy (and handy in the controller's explanations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tierserve.autoscaler.types import (
    Histogram,
    MetricSample,
    Slo,
    merge_histograms,
)
from tierserve.core.capacity import ReplicaCapacity
from tierserve.core.tpot_tail import quantile_midpoints

MIN_ANSWERS = 50  # finished requests below which an answer-length shape is noise


def output_ratio(samples: Sequence[MetricSample], default: float) -> float:
    """Mean output tokens of the requests that finished in the window. Arrival-based
    demand leads, the generation rate lags by a request's lifetime, so we scale arrivals
    by this (and not by generated/arrived, which reads near zero after a quiet spell)."""
    finished = sum(s.finish_rate for s in samples)
    tokens = sum(s.finished_tokens_rate for s in samples)
    if finished <= 0:
        return default
    if tokens <= 0:
        # engines without vLLM's request_generation_tokens histogram: tokens generated
        # per finished request over the window is the same mean in steady state
        tokens = sum(s.gen_token_rate for s in samples)
    return tokens / finished if tokens > 0 else default


def answer_quantiles(samples: Sequence[MetricSample]) -> tuple[float, ...] | None:
    """Answer lengths of the requests that finished in the window, at the tail model's
    quantile points (from the ``request_generation_tokens`` histograms); None without
    the histogram or with fewer than ``MIN_ANSWERS`` answers (the model then takes the
    exponential a mean implies)."""
    merged = merge_histograms([s.gen_tokens for s in samples if s.gen_tokens is not None])
    if merged is None or merged.total < MIN_ANSWERS:
        return None
    return quantile_midpoints(merged.quantile)


def demand(sample: MetricSample, capacity: ReplicaCapacity, out_ratio: float) -> float:
    """Load of one sample in replicas at 100% of the per-replica capacity.

    Two views, take the larger: the token work arriving (prefill + expected decode) and
    the work in flight (running + queued sequences against the concurrency that meets
    TPOT). The second catches what the first cannot see: a queue that is already there.
    """
    work = (
        sample.arrival_rate * out_ratio / capacity.decode_tokens_per_s
        + sample.prompt_token_rate / capacity.prefill_tokens_per_s
    ) / capacity.usable_fraction
    inflight = (sample.running + sample.waiting) / capacity.max_concurrency
    return max(work, inflight)


def prompt_ratio(samples: Sequence[MetricSample], default: float) -> float:
    """Mean prompt tokens per arriving request over the window (``default`` when nothing
    arrived: no arrivals say nothing about their prompts)."""
    arrived = sum(s.arrival_rate for s in samples)
    tokens = sum(s.prompt_token_rate for s in samples)
    return tokens / arrived if arrived > 0 else default


def granularity_safety(
    load: float,
    capacity: ReplicaCapacity,
    prompt_tokens: float,
    output_tokens: float,
    tpot_s: float,
) -> float:
    """Standard deviation of demand, in replicas, over the time a typical answer decodes.

    Work arrives in lumps, one per request: its prefill (and decode) in replica-seconds,
    ``w``. Over a window of ``tau`` seconds the work arriving has mean ``load * tau`` and,
    for Poisson arrivals, variance ``load * tau * E[w^2]/E[w]``, so demand measured over
    ``tau`` has standard deviation ``sqrt(load * g / tau)`` replicas with ``g =
    E[w^2]/E[w]`` (``2 E[w]`` for exponential sizes). ``tau`` is what matters to TPOT: an
    answer of ``n`` tokens averages its steps over ``n * tpot`` seconds, so long answers
    average a co-scheduled prefill away while short answers behind long prompts take it
    whole. The mean rates cannot tell a mean from a tail, hence the exponential shape.

    An engine that runs one sequence at a time (``max_concurrency`` 1, llama.cpp here)
    never decodes beside another request's prefill: its lumps queue (TTFT, which the
    attainment feedback sees) but do not slow a decode, so the headroom is 0.
    """
    if load <= 0 or capacity.max_concurrency <= 1:
        return 0.0
    work = (
        prompt_tokens / capacity.prefill_tokens_per_s
        + output_tokens / capacity.decode_tokens_per_s
    ) / capacity.usable_fraction
    tau = max(1.0, output_tokens) * tpot_s
    return math.sqrt(load * 2 * work / tau)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def slope(ts: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of y over t (units per second); 0 with too few points."""
    n = len(ts)
    if n < 3:
        return 0.0
    mt, my = mean(ts), mean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var


def _latency_histograms(
    samples: Sequence[MetricSample],
) -> tuple[Histogram, Histogram] | None:
    """The window's TTFT and TPOT histograms merged; None when no request finished."""
    ttft = merge_histograms([s.ttft for s in samples if s.ttft is not None])
    tpot = merge_histograms([s.tpot for s in samples if s.tpot is not None])
    if ttft is None or tpot is None or ttft.total == 0:
        return None
    return ttft, tpot


def observed_attainment(samples: Sequence[MetricSample], slo: Slo) -> tuple[float, int] | None:
    """Share of recent requests meeting both targets, from histogram deltas.

    Histograms give marginals only, so we use the union bound (misses add up): it can
    only under-state attainment, which errs towards capacity. Returns (attainment, n).
    """
    merged = _latency_histograms(samples)
    if merged is None:
        return None
    ttft, tpot = merged
    miss = (1 - ttft.fraction_le(slo.ttft_p95_ms / 1000)) + (
        1 - tpot.fraction_le(slo.tpot_p95_ms / 1000)
    )
    return max(0.0, 1 - miss), ttft.total


def attainment_bounds(
    samples: Sequence[MetricSample], slo: Slo
) -> tuple[float, float, int] | None:
    """(lowest, highest) attainment the histograms allow, and the request count.

    Lowest: every observation in a bucket straddling a target missed, and the TTFT and
    TPOT misses are different requests. Highest: every straddling one met, and the
    misses overlap as much as they can. Feedback acts only on what is certain."""
    merged = _latency_histograms(samples)
    if merged is None:
        return None
    ttft, tpot = merged
    t_lo, t_hi = ttft.fraction_bounds(slo.ttft_p95_ms / 1000)
    p_lo, p_hi = tpot.fraction_bounds(slo.tpot_p95_ms / 1000)
    lowest = max(0.0, 1 - (1 - t_lo) - (1 - p_lo))
    highest = min(t_hi, p_hi)
    return lowest, highest, ttft.total


def p95_ms(samples: Sequence[MetricSample], which: str) -> float | None:
    hists: list[Histogram] = [
        h for s in samples if (h := (s.ttft if which == "ttft" else s.tpot)) is not None
    ]
    merged = merge_histograms(hists)
    if merged is None or merged.total == 0:
        return None
    return merged.quantile(0.95) * 1000

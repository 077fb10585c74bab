"""vLLM ``/metrics`` text -> snapshots -> :class:`MetricSample` (pure, no I/O).

Counters and histograms are cumulative in the exposition format; a sample needs rates
and deltas over the scrape interval, so we keep one :class:`EngineSnapshot` per engine
and difference consecutive ones. A counter that went down means the engine restarted:
the delta is then the new value (Prometheus' ``rate`` treats resets the same way).

vLLM has no arrivals counter, so arrivals are reconstructed by conservation:
``arrived = finished + change in (running + waiting)`` over the interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from tierserve.autoscaler.types import Histogram, MetricSample, ReplicaSample
from tierserve.core import vllm_names as names

RUNNING = names.RUNNING
WAITING = names.WAITING
KV = names.KV_USAGE
PROMPT = names.counter_sample(names.PROMPT_TOKENS)
GENERATED = names.counter_sample(names.GENERATION_TOKENS)
SUCCESS = names.counter_sample(names.REQUEST_SUCCESS)
TTFT = names.TTFT
TPOT = names.TPOT_NAMES
GEN_HIST = names.GENERATION_TOKENS_HIST


@dataclass(frozen=True)
class EngineSnapshot:
    """One engine's metrics at one instant (sums over label sets)."""

    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    counters: Mapping[str, float] = field(default_factory=dict)
    # histogram name -> cumulative counts per upper bound (including +Inf)
    buckets: Mapping[str, Mapping[float, float]] = field(default_factory=dict)


def parse(text: str) -> EngineSnapshot:
    """Raise ValueError on text that is not Prometheus exposition format."""
    gauges: dict[str, float] = {}
    counters: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket") and "le" in s.labels:
                hist = buckets.setdefault(s.name[: -len("_bucket")], {})
                le = float(s.labels["le"])
                hist[le] = hist.get(le, 0.0) + s.value
            elif family.type in ("counter", "histogram", "summary") or s.name.endswith("_total"):
                counters[s.name] = counters.get(s.name, 0.0) + s.value
            else:
                gauges[s.name] = gauges.get(s.name, 0.0) + s.value
    kv = next((gauges[k] for k in KV if k in gauges), 0.0)
    return EngineSnapshot(
        running=gauges.get(RUNNING, 0.0),
        waiting=gauges.get(WAITING, 0.0),
        kv_usage=kv,
        counters=counters,
        buckets=buckets,
    )


def _delta(cur: float, prev: float | None) -> float:
    if prev is None:
        return 0.0
    return cur if cur < prev else cur - prev  # reset: the engine restarted


def _hist_delta(
    cur: Mapping[float, float], prev: Mapping[float, float] | None
) -> Histogram | None:
    if not cur or prev is None:
        return None
    bounds = sorted(b for b in cur if not math.isinf(b))
    cum = [_delta(cur[b], prev.get(b, 0.0)) for b in bounds]
    inf = _delta(cur.get(math.inf, cum[-1] if cum else 0.0), prev.get(math.inf, 0.0))
    counts = [max(0, round(c - p)) for c, p in zip(cum, [0.0, *cum[:-1]], strict=True)]
    counts.append(max(0, round(inf - (cum[-1] if cum else 0.0))))
    return Histogram(tuple(bounds), tuple(counts))


def _counter(snap: EngineSnapshot, name: str) -> float:
    return snap.counters.get(name, 0.0)


def _merged(hists: Sequence[Histogram | None]) -> Histogram | None:
    present = [h for h in hists if h is not None]
    if not present:
        return None
    bounds = present[0].bounds
    same = [h for h in present if h.bounds == bounds]  # engines of one deployment agree
    counts = [sum(h.counts[i] for h in same) for i in range(len(bounds) + 1)]
    return Histogram(bounds, tuple(counts))


def _first_present(snap: EngineSnapshot, names: tuple[str, ...]) -> str:
    return next((n for n in names if n in snap.buckets), names[0])


def _engine_deltas(cur: EngineSnapshot, prev: EngineSnapshot | None) -> dict[str, float]:
    """Counter increases of one engine since its previous snapshot (0 without one)."""
    if prev is None:
        return dict.fromkeys(("arr", "prompt", "gen", "fin", "fin_tok"), 0.0)
    # a counter the previous snapshot lacked was 0 (its labels were created since)
    p = {k: prev.counters.get(k, 0.0) for k in cur.counters}
    fin = _delta(_counter(cur, SUCCESS), p.get(SUCCESS))
    growth = cur.running + cur.waiting - (prev.running + prev.waiting)
    return {
        "arr": max(0.0, fin + growth),
        "prompt": _delta(_counter(cur, PROMPT), p.get(PROMPT)),
        "gen": _delta(_counter(cur, GENERATED), p.get(GENERATED)),
        "fin": fin,
        "fin_tok": _delta(_counter(cur, GEN_HIST + "_sum"), p.get(GEN_HIST + "_sum")),
    }


def _engine_hists(cur: EngineSnapshot, prev: EngineSnapshot | None) -> list[Histogram | None]:
    """TTFT, TPOT and answer-length histogram deltas of one engine."""
    out: list[Histogram | None] = []
    for name in (TTFT, _first_present(cur, TPOT), GEN_HIST):
        before = None if prev is None else prev.buckets.get(name, {})
        out.append(_hist_delta(cur.buckets.get(name, {}), before))
    return out


def to_sample(
    t: float,
    dt: float,
    pairs: Sequence[tuple[EngineSnapshot, EngineSnapshot | None]],
    held: int = 0,
) -> MetricSample:
    """Combine (current, previous) snapshots of every engine into one sample."""
    totals: dict[str, float] = {}
    for cur, prev in pairs:
        for k, v in _engine_deltas(cur, prev).items():
            totals[k] = totals.get(k, 0.0) + v
    per_s = {k: v / dt if dt > 0 else 0.0 for k, v in totals.items()}
    hists = [_engine_hists(cur, prev) for cur, prev in pairs]
    return MetricSample(
        t=t,
        replicas=tuple(
            ReplicaSample(round(c.running), round(c.waiting), c.kv_usage) for c, _ in pairs
        ),
        arrival_rate=per_s.get("arr", 0.0),
        prompt_token_rate=per_s.get("prompt", 0.0),
        gen_token_rate=per_s.get("gen", 0.0),
        ttft=_merged([h[0] for h in hists]),
        tpot=_merged([h[1] for h in hists]),
        held=held,
        finish_rate=per_s.get("fin", 0.0),
        finished_tokens_rate=per_s.get("fin_tok", 0.0),
        gen_tokens=_merged([h[2] for h in hists]),
    )

"""A/B readout: per-variant counts and latency percentiles, with a significance test.

The test is the two-sided Mann-Whitney U test with the normal approximation and tie
correction (no distributional assumption: latency is skewed). Each variant is compared
with the first (the control) on TTFT when both have enough streamed samples, otherwise on
end-to-end latency. Samples are kept in bounded reservoirs (uniform, Algorithm R) so
memory is constant however long the experiment runs. Pure Python, no SciPy.

:meth:`AbRecorder.readout` returns the dict the operator writes into ``LLMRoute`` status.
Several router replicas each record their own share of the traffic: :meth:`AbRecorder.wire`
is one replica's statistics as JSON (:class:`VariantWire` per variant) and
:func:`merged` the recorder of their union (counts summed; each reservoir a uniform sample
of all replicas' values, drawn from each in proportion to what it saw), so one writer can
report the readout of every replica's traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_SAMPLES = 20
RESERVOIR_SIZE = 2000


class Reservoir:
    """A uniform sample of at most ``size`` values from a stream."""

    __slots__ = ("_rng", "_size", "seen", "values")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.values: list[float] = []
        self.seen = 0
        self._size, self._rng = size, rng

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self._size:
            self.values.append(value)
            return
        j = self._rng.randrange(self.seen)
        if j < self._size:
            self.values[j] = value


@dataclass
class VariantStats:
    requests: int = 0
    errors: int = 0
    ttft: Reservoir = field(default_factory=lambda: Reservoir(RESERVOIR_SIZE, random.Random(1)))
    tpot: Reservoir = field(default_factory=lambda: Reservoir(RESERVOIR_SIZE, random.Random(2)))
    e2e: Reservoir = field(default_factory=lambda: Reservoir(RESERVOIR_SIZE, random.Random(3)))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no data."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U: returns ``(U of a, p-value)`` (normal approx, ties)."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need values")
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks_a, tie_term, i, n = 0.0, 0.0, 0, n1 + n2
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # average rank of the tie group
        ranks_a += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    u1 = ranks_a - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - mean) - 0.5) / math.sqrt(var)  # continuity correction
    return u1, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


class AbRecorder:
    """Per-variant statistics for one route; lives across config reloads."""

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha
        self.variants: dict[str, VariantStats] = {}

    def record(self, variant: str, *, ok: bool, e2e: float, ttft: float | None,
               tpot: float | None) -> None:
        s = self.variants.get(variant)
        if s is None:
            s = self.variants[variant] = VariantStats()
        s.requests += 1
        if not ok:
            s.errors += 1
            return
        s.e2e.add(e2e)
        if ttft is not None:
            s.ttft.add(ttft)
        if tpot is not None:
            s.tpot.add(tpot)

    def wire(self) -> dict[str, dict[str, Any]]:
        """This recorder's statistics as JSON (per variant, :class:`VariantWire`)."""
        return {name: {"requests": s.requests, "errors": s.errors,
                       **{m: {"seen": r.seen, "values": [round(v, 6) for v in r.values]}
                          for m, r in (("ttft", s.ttft), ("tpot", s.tpot), ("e2e", s.e2e))}}
                for name, s in self.variants.items()}

    def readout(self, order: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(order or self.variants)
        variants = [_variant_dict(n, self.variants.get(n, VariantStats())) for n in names]
        comparisons = []
        if names:
            control = self.variants.get(names[0], VariantStats())
            for name in names[1:]:
                comparisons.append(self._compare(names[0], control, name,
                                                 self.variants.get(name, VariantStats())))
        return {"test": "two-sided Mann-Whitney U, normal approximation with tie correction",
                "alpha": self.alpha, "control": names[0] if names else None,
                "variants": variants, "comparisons": comparisons}

    def _compare(self, cname: str, c: VariantStats, name: str, v: VariantStats) -> dict[str, Any]:
        metric, a, b = "ttft_seconds", c.ttft.values, v.ttft.values
        if min(len(a), len(b)) < MIN_SAMPLES:
            metric, a, b = "e2e_seconds", c.e2e.values, v.e2e.values
        out: dict[str, Any] = {"control": cname, "variant": name, "metric": metric,
                               "samples": [len(a), len(b)]}
        if min(len(a), len(b)) < MIN_SAMPLES:
            out.update(p_value=None, significant=False,
                       note=f"fewer than {MIN_SAMPLES} samples per variant")
            return out
        _u, p = mann_whitney_u(a, b)
        p50a, p50b = percentile(a, 50), percentile(b, 50)
        out.update(p_value=p, significant=p < self.alpha,
                   median_difference_seconds=(p50b or 0.0) - (p50a or 0.0))
        return out


def _variant_dict(name: str, s: VariantStats) -> dict[str, Any]:
    return {
        "name": name, "requests": s.requests, "errors": s.errors,
        "error_rate": s.errors / s.requests if s.requests else 0.0,
        "ttft_p50_seconds": percentile(s.ttft.values, 50),
        "ttft_p95_seconds": percentile(s.ttft.values, 95),
        "tpot_p50_seconds": percentile(s.tpot.values, 50),
        "tpot_p95_seconds": percentile(s.tpot.values, 95),
        "e2e_p50_seconds": percentile(s.e2e.values, 50),
        "e2e_p95_seconds": percentile(s.e2e.values, 95),
    }


class SampleWire(BaseModel):
    """One reservoir: ``seen`` values went in, ``values`` is a uniform sample of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seen: Annotated[int, Field(ge=0)]
    values: Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                      Field(max_length=RESERVOIR_SIZE)]

    @model_validator(mode="after")
    def _consistent(self) -> SampleWire:
        if len(self.values) > self.seen:
            raise ValueError(f"{len(self.values)} values but seen is {self.seen}")
        return self


class VariantWire(BaseModel):
    """One variant's statistics on one replica (what :meth:`AbRecorder.wire` writes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    requests: Annotated[int, Field(ge=0)]
    errors: Annotated[int, Field(ge=0)]
    ttft: SampleWire
    tpot: SampleWire
    e2e: SampleWire


def sample_shares(seen: Sequence[int], held: Sequence[int], size: int) -> list[int]:
    """How many of each part's held values a merged sample of ``size`` takes.

    In proportion to what each part saw (largest remainder), never more than it holds:
    a uniform sample of the union takes a part's values at the rate the part saw them.
    """
    total = sum(seen)
    if sum(held) <= size or total == 0:
        return list(held)
    raw = [size * s / total for s in seen]
    shares = [min(h, math.floor(r)) for r, h in zip(raw, held, strict=True)]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - math.floor(raw[i]),
                          reverse=True)
    while sum(shares) < size:  # ends: together the parts hold more than size
        room = [i for i in by_remainder if shares[i] < held[i]]
        for i in room[:size - sum(shares)]:
            shares[i] += 1
    return shares


def merge_samples(parts: Sequence[SampleWire], size: int, rng: random.Random) -> Reservoir:
    """A reservoir of the union of ``parts``: all values while they fit, else a uniform
    sample drawn from each part by :func:`sample_shares`."""
    out = Reservoir(size, rng)
    shares = sample_shares([p.seen for p in parts], [len(p.values) for p in parts], size)
    for part, k in zip(parts, shares, strict=True):
        out.values += part.values if k == len(part.values) else rng.sample(part.values, k)
    out.seen = sum(p.seen for p in parts)
    return out


def merged(parts: Sequence[Mapping[str, VariantWire]], alpha: float = 0.05,
           seed: int = 0) -> AbRecorder:
    """The recorder of several replicas' statistics of one route (counts summed)."""
    rec, rng = AbRecorder(alpha), random.Random(seed)
    for name in dict.fromkeys(n for part in parts for n in part):
        mine = [part[name] for part in parts if name in part]
        rec.variants[name] = VariantStats(
            requests=sum(v.requests for v in mine), errors=sum(v.errors for v in mine),
            ttft=merge_samples([v.ttft for v in mine], RESERVOIR_SIZE, rng),
            tpot=merge_samples([v.tpot for v in mine], RESERVOIR_SIZE, rng),
            e2e=merge_samples([v.e2e for v in mine], RESERVOIR_SIZE, rng))
    return rec

"""A/B readout: per-variant counts and latency percentiles, with a significance test.

The test is the two-sided Mann-Whitney U test with the normal approximation and tie
correction (no distributional assumption: latency is skewed). Each variant is compared
with the first (the control) on TTFT when both have enough streamed samples, otherwise on
end-to-end latency. Samples are kept in bounded reservoirs (uniform, Algorithm R) so
memory is constant however long the experiment runs. Pure Python, no SciPy.

:meth:`AbRecorder.readout` returns the dict the operator writes into ``LLMRoute`` status.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_SAMPLES = 20


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
    ttft: Reservoir = field(default_factory=lambda: Reservoir(2000, random.Random(1)))
    tpot: Reservoir = field(default_factory=lambda: Reservoir(2000, random.Random(2)))
    e2e: Reservoir = field(default_factory=lambda: Reservoir(2000, random.Random(3)))


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

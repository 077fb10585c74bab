"""Simulation results and the summary the CLI prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.autoscaler.types import Slo


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    t: float
    arrival_rate: float
    replicas: int
    ready: int


@dataclass(frozen=True)
class SimResult:
    policy: str
    trace: tuple[TraceRequest, ...]
    first_token_s: tuple[float, ...]
    finish_s: tuple[float, ...]
    gpu_seconds: float
    end_s: float
    timeline: tuple[TimelinePoint, ...]
    changes: tuple[tuple[float, int, int, str], ...]

    def ttft_s(self) -> list[float]:
        return [f - r.arrival_s for f, r in zip(self.first_token_s, self.trace, strict=True)]

    def tpot_s(self) -> list[float]:
        return [
            (e - f) / (r.output_tokens - 1) if r.output_tokens > 1 else 0.0
            for f, e, r in zip(self.first_token_s, self.finish_s, self.trace, strict=True)
        ]

    def met(self, slo: Slo) -> list[bool]:
        """Per request: both targets met (unfinished requests count as misses)."""
        ttft_max, tpot_max = slo.ttft_p95_ms / 1000, slo.tpot_p95_ms / 1000
        return [
            a <= ttft_max and b <= tpot_max  # NaN compares false: a miss
            for a, b in zip(self.ttft_s(), self.tpot_s(), strict=True)
        ]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN (unfinished) sorts last, i.e. as the worst value."""
    if not values:
        return math.nan
    ordered = sorted(values, key=lambda v: (math.isnan(v), v))
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def summarize(result: SimResult, slo: Slo, oracle_gpu_hours: float | None) -> dict[str, object]:
    met = result.met(slo)
    points = result.timeline
    return {
        "policy": result.policy,
        "requests": len(result.trace),
        "slo_attainment": round(sum(met) / len(met), 5) if met else math.nan,
        "ttft_p95_ms": round(percentile(result.ttft_s(), 95) * 1000, 1),
        "tpot_p95_ms": round(percentile(result.tpot_s(), 95) * 1000, 2),
        "gpu_hours": round(result.gpu_seconds / 3600, 4),
        "oracle_gpu_hours": None if oracle_gpu_hours is None else round(oracle_gpu_hours, 4),
        "peak_replicas": max((p.replicas for p in points), default=0),
        "avg_replicas": round(result.gpu_seconds / result.end_s, 3) if result.end_s else 0.0,
        "scale_events": len(result.changes),
        "unfinished": sum(1 for f in result.finish_s if math.isnan(f)),
    }

"""Client-side figures of the demo's records, shared by the live view and the report.

Latency comes from answered requests that streamed content (:meth:`DemoRecord.timing`,
the same TTFT/TPOT definitions as :mod:`tierserve.dev.live_timeline`); attainment counts
a failed request as one that missed the SLO, since its user got no answer in time.

A one-token answer has no TPOT (as in vLLM's histogram), so TPOT percentiles leave it
out. That matters here: the router replays a buffered tier answer (a tiered route that
inspects the fast answer before it is sent) as one content chunk, which would otherwise
count as a near-zero TPOT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tierserve.autoscaler.sim.results import percentile
from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.live_timeline import RequestRecord, phase_figures


def timings(records: Sequence[DemoRecord]) -> list[RequestRecord]:
    return [t for t in (r.timing() for r in records) if t is not None]


def failed(records: Sequence[DemoRecord]) -> int:
    return sum(1 for r in records if not r.ok)


def has_tpot(t: RequestRecord) -> bool:
    return t.tokens > 1


def tpot_samples(answered: Sequence[RequestRecord]) -> list[float]:
    return [t.tpot_ms for t in answered if has_tpot(t)]


def p95_ms(records: Sequence[DemoRecord], since: float = -math.inf) -> tuple[float, float]:
    """TTFT and TPOT p95 (ms) of the requests that finished at or after ``since``; NaN
    when none did."""
    recent = [t for t in timings(records) if t.end >= since]
    return percentile([t.ttft_ms for t in recent], 95), percentile(tpot_samples(recent), 95)


def slo_figures(records: Sequence[DemoRecord], ttft_slo_ms: float | None,
                tpot_slo_ms: float | None) -> dict[str, Any]:
    """Requests, failures, TTFT/TPOT p50/p95 (ms) and, with both targets, the attainment
    (requests that met both, over all requests, failures included)."""
    out: dict[str, Any] = {"requests": len(records), "failed": failed(records)}
    answered = timings(records)
    if not answered:
        return out
    figures = phase_figures(answered, -math.inf, math.inf, ttft_slo_ms or math.inf,
                            tpot_slo_ms or math.inf)
    tpot = tpot_samples(answered)
    out.update(ttft_p50_ms=figures["ttft_p50_ms"], ttft_p95_ms=figures["ttft_p95_ms"],
               tpot_p50_ms=round(percentile(tpot, 50), 2),
               tpot_p95_ms=round(percentile(tpot, 95), 2))
    if ttft_slo_ms is not None and tpot_slo_ms is not None:
        met = figures["attainment"] * len(answered)
        out["attainment"] = round(met / len(records), 3)
    return out

"""Timeline of a live autoscaling run: client-side request records, the deployment's
replica counts and ``status.slo`` as polled, turned into per-phase figures and a PNG.

The live e2e test (``e2e/test_autoscaler_live_real.py``) records what its clients saw
(one :class:`RequestRecord` per streamed request) and what the API server said once a
second (:class:`ReplicaPoint`); :func:`phase_figures` summarises a time range (p50/p95 of
TTFT and TPOT, SLO attainment per request) and :func:`plot_timeline` draws load,
replicas, TTFT/TPOT p95 against the SLO lines and the scale events.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierserve.autoscaler.sim.results import percentile


@dataclass(frozen=True)
class RequestRecord:
    """One streamed request as the client saw it (monotonic seconds)."""

    start: float
    first_token: float
    end: float
    tokens: int

    @property
    def ttft_ms(self) -> float:
        return (self.first_token - self.start) * 1000

    @property
    def tpot_ms(self) -> float:
        """Mean interval between tokens after the first (vLLM's TPOT)."""
        return (self.end - self.first_token) * 1000 / max(1, self.tokens - 1)


@dataclass(frozen=True)
class ReplicaPoint:
    """The deployment as polled: spec and ready replicas and ``status.slo``."""

    t: float
    spec: int
    ready: int
    slo: dict[str, Any]


def phase_figures(records: Sequence[RequestRecord], lo: float, hi: float,
                  ttft_slo_ms: float, tpot_slo_ms: float) -> dict[str, Any]:
    """p50/p95 TTFT and TPOT and attainment (both targets met) of requests started in
    ``[lo, hi)``; ``{"requests": 0}`` when there are none."""
    inside = [r for r in records if lo <= r.start < hi]
    if not inside:
        return {"requests": 0}
    ttft = [r.ttft_ms for r in inside]
    tpot = [r.tpot_ms for r in inside]
    met = sum(1 for r in inside if r.ttft_ms <= ttft_slo_ms and r.tpot_ms <= tpot_slo_ms)
    return {"requests": len(inside),
            "ttft_p50_ms": round(percentile(ttft, 50), 1),
            "ttft_p95_ms": round(percentile(ttft, 95), 1),
            "tpot_p50_ms": round(percentile(tpot, 50), 2),
            "tpot_p95_ms": round(percentile(tpot, 95), 2),
            "attainment": round(met / len(inside), 3)}


def binned_p95(records: Sequence[RequestRecord], t0: float, t1: float, bin_s: float,
               metric: str) -> tuple[list[float], list[float]]:
    """p95 of ``metric`` (``ttft_ms`` or ``tpot_ms``) per bin of ``bin_s`` by the time a
    request finished, from ``t0``; empty bins are NaN (a gap in the plot)."""
    n = max(1, math.ceil((t1 - t0) / bin_s))
    bins: list[list[float]] = [[] for _ in range(n)]
    for r in records:
        i = int((r.end - t0) // bin_s)
        if 0 <= i < n:
            bins[i].append(float(getattr(r, metric)))
    xs = [(i + 0.5) * bin_s for i in range(n)]
    return xs, [percentile(b, 95) if b else math.nan for b in bins]


def in_flight(records: Sequence[RequestRecord], times: Sequence[float]) -> list[int]:
    """How many recorded requests were open at each of ``times``."""
    return [sum(1 for r in records if r.start <= t < r.end) for t in times]


def plot_timeline(path: Path, records: Sequence[RequestRecord],
                  points: Sequence[ReplicaPoint], *, t0: float, load: tuple[float, float],
                  ttft_slo_ms: float, tpot_slo_ms: float, title: str) -> None:
    """Three panels on one time axis (seconds since ``t0``, the load step's start):
    requests in flight and replicas; TTFT p95; TPOT p95 (client-side per 10 s by
    completion, and ``status.slo``'s p95 over the autoscaler's window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t1 = max([p.t for p in points] + [r.end for r in records] + [t0 + 1])
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    ts = [p.t - t0 for p in points]
    ax = axes[0]
    ax.plot(ts, in_flight(records, [p.t for p in points]), color="grey", label="requests in flight")
    ax.step(ts, [p.spec for p in points], where="post", color="C0", label="replicas (spec)")
    ax.step(ts, [p.ready for p in points], where="post", color="C2", ls="--",
            label="replicas ready")
    ax.axvspan(load[0] - t0, load[1] - t0, color="C1", alpha=0.08, label="load step")
    ax.set_ylabel("count")
    for ax, metric, key, slo, name in (
            (axes[1], "ttft_ms", "observedTtftP95Ms", ttft_slo_ms, "TTFT"),
            (axes[2], "tpot_ms", "observedTpotP95Ms", tpot_slo_ms, "TPOT")):
        xs, ys = binned_p95(records, t0, t1, 10.0, metric)
        ax.plot(xs, ys, "o-", color="C3", label=f"{name} p95, client, per 10 s")
        ax.plot(ts, [p.slo.get(key, math.nan) for p in points], color="C4",
                label=f"{name} p95, status.slo (window)")
        ax.axhline(slo, color="k", ls=":", label=f"SLO {slo:g} ms")
        ax.set_ylabel(f"{name} ms")
    for prev, cur in itertools.pairwise(points):
        if cur.spec != prev.spec:
            for ax in axes:
                ax.axvline(cur.t - t0, color="C0", alpha=0.4)
            axes[0].annotate(f"{prev.spec}\u2192{cur.spec}", (cur.t - t0, cur.spec),
                             textcoords="offset points", xytext=(3, 3))
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7)
    axes[2].set_xlabel("seconds since the load step began")
    save_figure(fig, path, title)


def save_figure(fig: Any, path: Path, title: str) -> None:
    """Title, lay out and write ``fig`` as a PNG at ``path`` (its folder made), then
    free it (pyplot keeps every open figure)."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""PNG plot of one or more runs: load, replicas and TTFT p95 over time.

matplotlib is imported lazily (and with the Agg backend) so the simulator itself never
needs a display or the plotting stack.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tierserve.autoscaler.sim.results import SimResult, percentile


def _per_minute_load(result: SimResult, bin_s: float) -> tuple[list[float], list[float]]:
    counts: dict[int, int] = defaultdict(int)
    for r in result.trace:
        counts[int(r.arrival_s // bin_s)] += 1
    xs = sorted(counts)
    return [x * bin_s / 60 for x in xs], [counts[x] / bin_s for x in xs]


def _p95(
    result: SimResult, values: list[float], bin_s: float
) -> tuple[list[float], list[float]]:
    groups: dict[int, list[float]] = defaultdict(list)
    for req, v in zip(result.trace, values, strict=True):
        groups[int(req.arrival_s // bin_s)].append(v)
    xs = sorted(groups)
    ys = [percentile(groups[x], 95) for x in xs]
    return [x * bin_s / 60 for x in xs], [y if not math.isnan(y) else float("inf") for y in ys]


def plot_runs(
    results: Sequence[SimResult],
    path: Path,
    *,
    title: str,
    ttft_slo_ms: float,
    tpot_slo_ms: float,
    oracle: tuple[float, Sequence[int]] | None = None,
    bin_s: float = 60.0,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    load_x, load_y = _per_minute_load(results[0], bin_s)
    axes[0].plot(load_x, load_y, color="black")
    axes[0].set_ylabel("arrivals (req/s)")
    for res in results:
        xs = [p.t / 60 for p in res.timeline]
        axes[1].step(xs, [p.replicas for p in res.timeline], where="post", label=res.policy)
        axes[2].plot(*_p95(res, res.ttft_s(), bin_s), label=res.policy)
        axes[3].plot(*_p95(res, res.tpot_s(), bin_s), label=res.policy)
    if oracle is not None and not any(r.policy == "oracle" for r in results):
        bucket_s, sched = oracle
        xs = [i * bucket_s / 60 for i in range(len(sched))]
        axes[1].step(
            xs, list(sched), where="post", color="grey", linestyle=":", label="oracle bound"
        )
    axes[1].set_ylabel("replicas (incl. starting)")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].axhline(ttft_slo_ms / 1000, color="red", linestyle="--", label="TTFT SLO")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("TTFT p95 per minute (s)")
    axes[2].legend(loc="upper right", fontsize=8)
    axes[3].axhline(tpot_slo_ms / 1000, color="red", linestyle="--", label="TPOT SLO")
    axes[3].set_ylabel("TPOT p95 per minute (s)")
    axes[3].set_xlabel("trace time (min)")
    axes[3].legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

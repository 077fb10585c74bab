"""The demo's PNG timeline: load, replicas per deployment, TTFT/TPOT p95 against the SLO
lines, scale events marked, on one time axis (seconds since the traffic began).

The single-deployment live e2e test draws with :func:`tierserve.dev.live_timeline.plot_timeline`;
this is the same picture for several deployments and routes, built on its binning
(:func:`~tierserve.dev.live_timeline.binned_p95`). Scale events are where a deployment's
polled ``spec.replicas`` changed (the Events' wall-clock times are in the summary).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tierserve.dev.demo.figures import has_tpot, timings
from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.live_timeline import ReplicaPoint, binned_p95, save_figure

BIN_S = 10.0
ROUTE_COLOURS = 4  # matplotlib's C0.. for deployments, C4.. for routes


def start_time(records: Sequence[DemoRecord],
               replica_points: Mapping[str, Sequence[ReplicaPoint]]) -> float:
    """The axis' zero: the first request or poll (monotonic seconds)."""
    times = [r.start for r in records] + [p.t for ps in replica_points.values() for p in ps]
    return min(times, default=0.0)


def binned_rate(records: Sequence[DemoRecord], t0: float, t1: float,
                bin_s: float = BIN_S) -> tuple[list[float], list[float], list[float]]:
    """Requests sent per second and failures per second, per bin of ``bin_s`` by start."""
    n = max(1, math.ceil((t1 - t0) / bin_s))
    sent, bad = [0] * n, [0] * n
    for r in records:
        i = int((r.start - t0) // bin_s)
        if 0 <= i < n:
            sent[i] += 1
            bad[i] += not r.ok
    xs = [(i + 0.5) * bin_s for i in range(n)]
    return xs, [c / bin_s for c in sent], [c / bin_s for c in bad]


def phase_spans(records: Sequence[DemoRecord]) -> list[tuple[str, float, float]]:
    """Each phase with requests: its name and first start to last end, in run order."""
    spans: dict[str, tuple[float, float]] = {}
    for r in records:
        lo, hi = spans.get(r.phase, (r.start, r.end))
        spans[r.phase] = (min(lo, r.start), max(hi, r.end))
    return sorted(((p, lo, hi) for p, (lo, hi) in spans.items()), key=lambda s: s[1])


def scale_changes(points: Sequence[ReplicaPoint]) -> list[tuple[float, int, int]]:
    """(time, from, to) wherever the polled spec replicas changed."""
    return [(cur.t, prev.spec, cur.spec) for prev, cur in itertools.pairwise(points)
            if cur.spec != prev.spec]


def _load_panel(ax: Any, records: Sequence[DemoRecord], t0: float, t1: float) -> None:
    xs, rate, bad = binned_rate(records, t0, t1)
    ax.plot(xs, rate, "o-", color="grey", label=f"requests/s (per {BIN_S:g} s)")
    if any(bad):
        ax.plot(xs, bad, "x-", color="C3", label="failed/s")
    for i, (phase, lo, hi) in enumerate(phase_spans(records)):
        ax.axvspan(lo - t0, hi - t0, color=f"C{i}", alpha=0.08)
        ax.annotate(phase, (lo - t0, 0), textcoords="offset points", xytext=(2, 2),
                    fontsize=7)
    ax.set_ylabel("requests/s")


def _replica_panel(ax: Any, replica_points: Mapping[str, Sequence[ReplicaPoint]],
                   t0: float, colours: Mapping[str, str]) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    marks = []
    for dep, points in sorted(replica_points.items()):
        ts = [p.t - t0 for p in points]
        ax.step(ts, [p.spec for p in points], where="post", color=colours[dep],
                label=f"{dep} spec")
        ax.step(ts, [p.ready for p in points], where="post", color=colours[dep], ls="--",
                label=f"{dep} ready")
        for t, old, new in scale_changes(points):
            marks.append(t - t0)
            ax.annotate(f"{old}\u2192{new}", (t - t0, new), textcoords="offset points",
                        xytext=(3, 3), fontsize=7, color=colours[dep])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("replicas")
    return marks


def _latency_panel(ax: Any, records: Sequence[DemoRecord], t0: float, t1: float,
                   metric: str, slos: Mapping[str, float | None],
                   colours: Mapping[str, str]) -> None:
    label = "TTFT" if metric == "ttft_ms" else "TPOT"
    for i, model in enumerate(sorted({r.model for r in records})):
        mine = timings([r for r in records if r.model == model])
        if metric == "tpot_ms":
            mine = [t for t in mine if has_tpot(t)]
        xs, ys = binned_p95(mine, t0, t1, BIN_S, metric)
        # routes after the deployments' colours, so a route never looks like a deployment
        ax.plot(xs, ys, "o-", color=f"C{ROUTE_COLOURS + i}", label=f"{model} {label} p95")
    for dep, slo in sorted(slos.items()):
        if slo is not None:  # in the deployment's colour, as in the replicas panel
            ax.axhline(slo, color=colours[dep], ls=":", label=f"SLO {dep} {slo:g} ms")
    ax.set_ylabel(f"{label} p95 ms")


def plot_demo(path: Path, records: Sequence[DemoRecord],
              replica_points: Mapping[str, Sequence[ReplicaPoint]],
              slos: Mapping[str, tuple[float | None, float | None]], title: str) -> None:
    """Draw the timeline to ``path``; ``slos`` maps a deployment to its TTFT and TPOT p95
    targets (ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = start_time(records, replica_points)
    t1 = max([r.end for r in records]
             + [p.t for ps in replica_points.values() for p in ps] + [t0 + 1])
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    _load_panel(axes[0], records, t0, t1)
    colours = {d: f"C{i % ROUTE_COLOURS}"
               for i, d in enumerate(sorted({*replica_points, *slos}))}
    marks = _replica_panel(axes[1], replica_points, t0, colours)
    for ax, metric, index in ((axes[2], "ttft_ms", 0), (axes[3], "tpot_ms", 1)):
        _latency_panel(ax, records, t0, t1, metric, {d: s[index] for d, s in slos.items()},
                       colours)
    for ax in axes:
        for t in marks:
            ax.axvline(t, color="C0", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # an empty run has nothing to label
            ax.legend(loc="upper right", fontsize=7)
    axes[3].set_xlabel("seconds since the traffic began")
    save_figure(fig, path, title)

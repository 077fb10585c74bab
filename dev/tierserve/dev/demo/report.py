"""The demo's end-of-run report: ``summary.json``, ``summary.md`` and ``timeline.png``.

:func:`summarize` gathers the figures: requests and failures (overall, per phase), the
client-side TTFT/TPOT p95 and attainment per route against the targets of the route's
first deployment (the fast tier, or the first variant), each LLMDeployment's readiness,
replicas, targets and ``status.slo`` (the autoscaler's window), the tier split,
escalations and cost saved against all-slow (the router's counters in Prometheus), the
A/B readout (the A/B routes' ``status.ab``) and the scale events with their reasons (the
``Scaled`` Events). :func:`render_summary` prints it as Markdown (what ``summary.md``
holds and the terminal shows); :func:`write` writes the three files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tierserve.dev.demo.figures import failed, slo_figures
from tierserve.dev.demo.readouts import (
    Obj,
    PromQuery,
    ab_readouts,
    deployment_row,
    name,
    route_row,
    scale_events,
    slo_targets,
    tier_readout,
)
from tierserve.dev.demo.summary_md import render_summary
from tierserve.dev.demo.timeline import plot_demo
from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.live_timeline import ReplicaPoint

__all__ = ["render_summary", "summarize", "write"]

TOP_ERRORS = 5


def _phases(records: Sequence[DemoRecord]) -> list[dict[str, Any]]:
    order = list(dict.fromkeys(r.phase for r in sorted(records, key=lambda r: r.start)))
    return [{"phase": p, **slo_figures([r for r in records if r.phase == p], None, None)}
            for p in order]


def _routes(records: Sequence[DemoRecord], routes: Sequence[Obj],
            deployments: Sequence[Obj]) -> list[dict[str, Any]]:
    """Client-side figures per route model, and per model the client asked a deployment
    by (the one whose name or served model name it is)."""
    by_name = {name(d): d for d in deployments}
    by_model = {str(d.get("spec", {}).get("model", {}).get("name")): d for d in deployments}
    rows = [route_row(r) for r in routes]
    known = {row["model"] for row in rows}
    for model in sorted({r.model for r in records} - known):
        dep = by_name.get(model) or by_model.get(model)
        rows.append({"name": None, "model": model, "mode": "direct",
                     "ready": None, "deployments": [name(dep)] if dep else []})
    for row in rows:
        first = by_name.get(row["deployments"][0]) if row["deployments"] else None
        ttft, tpot = slo_targets(first) if first else (None, None)
        mine = [r for r in records if r.model == row["model"]]
        row.update(slo_from=name(first) if first else None, ttft_slo_ms=ttft,
                   tpot_slo_ms=tpot, **slo_figures(mine, ttft, tpot))
    return rows


def summarize(records: Sequence[DemoRecord],
              replica_points: Mapping[str, Sequence[ReplicaPoint]],
              events: Sequence[dict[str, Any]], routes: Sequence[dict[str, Any]],
              deployments: Sequence[dict[str, Any]],
              prom_query: PromQuery | None) -> dict[str, Any]:
    """Every figure of the report, JSON-ready (NaN as null)."""
    errors = Counter(r.error for r in records if r.error)
    tiered = [str(r["spec"]["model"]) for r in routes if r.get("spec", {}).get("tiers")]
    summary = {
        "requests": len(records), "answered": len(records) - failed(records),
        "failed": failed(records),
        "errors": [{"error": e, "count": n} for e, n in errors.most_common(TOP_ERRORS)],
        "phases": _phases(records),
        "routes": _routes(records, routes, deployments),
        "deployments": [deployment_row(d, replica_points.get(name(d), ()))
                        for d in deployments],
        "tiers": tier_readout(prom_query, tiered),
        "ab": ab_readouts(routes),
        "scale_events": scale_events(events),
    }
    return dict(_clean(summary))


def _clean(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(out_dir: Path, records: Sequence[DemoRecord],
          replica_points: Mapping[str, Sequence[ReplicaPoint]],
          events: Sequence[dict[str, Any]], routes: Sequence[dict[str, Any]],
          deployments: Sequence[dict[str, Any]], prom_query: PromQuery | None) -> Path:
    """Write ``summary.json``, ``summary.md`` and ``timeline.png`` into ``out_dir``
    (created if missing); returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(records, replica_points, events, routes, deployments, prom_query)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False)
                                          + "\n")
    (out_dir / "summary.md").write_text(render_summary(summary))
    slos = {name(d): slo_targets(d) for d in deployments}
    plot_demo(out_dir / "timeline.png", records, replica_points, slos,
              title=f"tierserve demo: {summary['requests']} requests, "
                    f"{summary['failed']} failed")
    return out_dir

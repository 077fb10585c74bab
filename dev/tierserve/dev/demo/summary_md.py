"""The demo summary as Markdown tables: ``summary.md`` and what the terminal shows at the
end. Pure formatting of :func:`tierserve.dev.demo.report.summarize`'s dict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _vs(value: Any, slo: Any) -> str:
    return cell(value) if slo is None else f"{cell(value)} / {cell(slo)}"


def _requests(s: Mapping[str, Any]) -> list[str]:
    lines = [f"Requests: {s['requests']} sent, {s['answered']} answered, "
             f"{s['failed']} failed.", ""]
    lines += [f"- {e['count']} x {e['error']}" for e in s["errors"]]
    lines += ["", "## Per phase (client-side)", ""]
    lines += table(("phase", "requests", "failed", "TTFT p95 ms", "TPOT p95 ms"),
                   ((p["phase"], p["requests"], p["failed"], p.get("ttft_p95_ms"),
                     p.get("tpot_p95_ms")) for p in s["phases"]))
    return lines


def _routes(s: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Routes (client-side, against the first deployment's SLO)", ""]
    lines += table(("route", "model", "mode", "ready", "requests", "failed",
                    "TTFT p95 / SLO ms", "TPOT p95 / SLO ms", "attainment", "SLO of"),
                   ((r["name"], r["model"], r["mode"], r["ready"], r["requests"], r["failed"],
                     _vs(r.get("ttft_p95_ms"), r["ttft_slo_ms"]),
                     _vs(r.get("tpot_p95_ms"), r["tpot_slo_ms"]), _pct(r.get("attainment")),
                     r["slo_from"]) for r in s["routes"]))
    return lines


def _deployments(s: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Deployments (status.slo: the autoscaler's last window)", ""]
    rows = []
    for d in s["deployments"]:
        target, seen = d["slo_target"], d["status_slo"]
        rows.append((d["name"], d["runtime"], d["ready"],
                     f"{cell(d['ready_replicas'])}/{cell(d['replicas'])}",
                     f"{cell(d['replicas_min'])}-{cell(d['replicas_max'])}",
                     _vs(seen.get("observedTtftP95Ms"), target["ttft_p95_ms"]),
                     _vs(seen.get("observedTpotP95Ms"), target["tpot_p95_ms"]),
                     f"{_pct(seen.get('attainment'))} / {_pct(target['attainment'])}"))
    lines += table(("deployment", "runtime", "ready", "ready/replicas", "replicas min-max",
                    "TTFT p95 / SLO ms", "TPOT p95 / SLO ms", "attainment / target"), rows)
    return lines


def _tiers(s: Mapping[str, Any]) -> list[str]:
    tiers = s["tiers"]
    lines = ["", "## Tiers (router counters)", ""]
    if tiers.get("source") is None:
        return [*lines, tiers.get("note", "not available")]
    rows = []
    for model, t in sorted(tiers["routes"].items()):
        esc = ", ".join(f"{why} {n:g}" for why, n in sorted(t["escalations"].items())) or "0"
        rows.append((model, t["fast"], t["slow"], _pct(t["slow_share"]), esc,
                     f"{t['cost_saved_usd']:.6f}"))
    lines += table(("route", "fast", "slow", "slow share", "escalations",
                    "cost saved vs all-slow, USD"), rows)
    return lines


def _ab(s: Mapping[str, Any]) -> list[str]:
    lines = ["", "## A/B readout (status.ab)", ""]
    if not s["ab"]:
        return [*lines, "no A/B readout yet"]
    for ab in s["ab"]:
        lines += [f"Route {ab['route']} (model {ab['model']}): {ab.get('test') or 'no test'}; "
                  f"p = {cell(ab.get('pValue'))}, significant: {cell(ab.get('significant'))}",
                  ""]
        lines += table(("variant", "requests", "error rate", "TTFT p50/p95 ms",
                        "TPOT p50/p95 ms"),
                       ((v["name"], v.get("requests"), _pct(v.get("errorRate")),
                         f"{cell(v.get('ttftP50Ms'))}/{cell(v.get('ttftP95Ms'))}",
                         f"{cell(v.get('tpotP50Ms'))}/{cell(v.get('tpotP95Ms'))}")
                        for v in ab.get("variants", [])))
        lines.append("")
    return lines


def _scale_events(s: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Scale events (Events, reason Scaled)", ""]
    if not s["scale_events"]:
        return [*lines, "none"]
    return lines + table(("time", "deployment", "message", "count"),
                         ((e["time"], e["object"], e["message"], e["count"])
                          for e in s["scale_events"]))


def render_summary(summary: Mapping[str, Any]) -> str:
    """The whole summary as Markdown."""
    lines = ["# Demo summary", ""]
    for part in (_requests, _routes, _deployments, _tiers, _ab, _scale_events):
        lines += part(summary)
    # one blank line between blocks, however the parts end
    kept = [line for i, line in enumerate(lines) if line or (i and lines[i - 1])]
    return "\n".join(kept).rstrip() + "\n"

"""The benchmark's side-by-side table (text and JSON) from the report half's runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tierserve.core.catalog import CATALOG, CPU
from tierserve.core.routerconfig import DeploymentConfig
from tierserve.dev.tierbench.calibrate import Calibrated, Item, Point, finite, single, weak_strong
from tierserve.dev.tierbench.runner import Run, by_id
from tierserve.routing.tiering import cost_per_token


def row(run: Run, deployments: Mapping[str, DeploymentConfig],
        slow_alone: Run | None = None, fast_alone: Run | None = None) -> dict[str, Any]:
    """One line of the table: accuracy, cost, and for tiered runs the tier traffic.

    The added latency of an escalation is the fast attempt it throws away: the fast
    configuration's latency alone on the escalated questions. The raw difference to the
    slow configuration alone is kept too; it carries the load noise of two passes.
    """
    n = max(1, len(run.answers))
    token_usd = sum(t * cost_per_token(deployments[d]) for d, t in run.tokens.items())
    out: dict[str, Any] = {
        "config": run.label, "questions": len(run.answers),
        "accuracy": round(run.accuracy(), 4), "cpu_s": round(run.cpu_s, 2),
        "cpu_usd_per_1k": round(run.cpu_s * CATALOG[CPU].cost_per_hour_usd / 3600 * 1000 / n,
                                5),
        "tokens": sum(run.tokens.values()),
        "token_usd_per_1k": round(token_usd * 1000 / n, 5),
        "mean_latency_s": round(sum(a.latency_s for a in run.answers) / n, 3)}
    if slow_alone is not None and fast_alone is not None:
        escalated = [a for a in run.answers if a.escalated]
        slow, fast = by_id(slow_alone), by_id(fast_alone)
        added = [fast[a.id].latency_s for a in escalated if a.id in fast]
        diff = [a.latency_s - slow[a.id].latency_s for a in escalated if a.id in slow]
        out.update({
            "slow_by_classifier": round(sum(a.slow_by_classifier for a in run.answers) / n, 4),
            "escalated": round(len(escalated) / n, 4),
            "escalations_by_reason": dict(Counter(a.escalated for a in escalated
                                                  if a.escalated)),
            "added_latency_of_escalation_s": _mean(added),
            "escalated_minus_slow_alone_s": _mean(diff)})
    return out


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def point_json(p: Point, n: int) -> dict[str, Any]:
    return {"classifier_threshold": finite(p.t_cls), "min_mean_logprob": finite(p.t_lp),
            "accuracy": round(p.accuracy(n), 4), "cost_s": round(p.cost, 2),
            "slow_by_classifier": round(p.slow / max(1, n), 4),
            "escalated": round(p.escalated / max(1, n), 4)}


def pair_json(c: Calibrated, n: int, items: Mapping[str, Sequence[Item]]) -> dict[str, Any]:
    (fc, _), (sc, _) = single(items[c.fast]), single(items[c.slow])
    return {"fast": c.fast, "slow": c.slow,
            "weak_strong": weak_strong(items[c.fast], items[c.slow]),
            "fast_accuracy": round(fc / max(1, n), 4), "slow_accuracy": round(sc / max(1, n), 4),
            "classifier": point_json(c.classifier, n),
            "confidence": point_json(c.confidence, n), "both": point_json(c.both, n)}


_COLUMNS = (("config", "{}", 22), ("accuracy", "{:.1%}", 8), ("cpu_s", "{:.1f}", 7),
            ("cpu_usd_per_1k", "{:.4f}", 9), ("token_usd_per_1k", "{:.4f}", 9),
            ("mean_latency_s", "{:.2f}", 7), ("slow_by_classifier", "{:.0%}", 6),
            ("escalated", "{:.0%}", 6), ("added_latency_of_escalation_s", "{:.2f}", 7))
_HEAD = ("configuration", "accuracy", "CPU-s", "CPU $/1k", "token $/1k", "lat s",
         "slow", "escal.", "+lat s")


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w)
                       for i, (h, (_k, _f, w)) in enumerate(zip(_HEAD, _COLUMNS, strict=True)))]
    for r in rows:
        cells = []
        for i, (key, fmt, width) in enumerate(_COLUMNS):
            v = r.get(key)
            text = "-" if v is None else fmt.format(v)
            cells.append(text.rjust(width) if i else text.ljust(width))
        reasons = r.get("escalations_by_reason")
        lines.append("  ".join(cells) + (f"  {reasons}" if reasons else ""))
    return "\n".join(lines)


def pairs_table(pairs: Sequence[dict[str, Any]]) -> str:
    lines = ["fast -> slow                    weak/strong  fast acc  slow acc  "
             "(b) acc  (b) escal.  (c) acc  (c) slow+escal."]
    for p in pairs:
        b, c = p["confidence"], p["both"]
        lines.append(f"{p['fast'] + ' -> ' + p['slow']:32}{'yes' if p['weak_strong'] else 'no':>11}"
                     f"{p['fast_accuracy']:>10.1%}{p['slow_accuracy']:>10.1%}"
                     f"{b['accuracy']:>9.1%}{b['escalated']:>12.0%}{c['accuracy']:>9.1%}"
                     f"{c['slow_by_classifier'] + c['escalated']:>17.0%}")
    return "\n".join(lines)

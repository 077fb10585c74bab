"""Side-by-side runs and baseline tuning for the benchmark.

Tuning rule for the baselines (HPA, KPA): sweep the knob each exposes for the load
level (the per-replica target), and keep the *cheapest* setting whose attainment is at
least ours; when no setting reaches it, keep the one with the best attainment. The full
sweep is returned too, so the choice can be checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierserve.autoscaler.sim.frontier import Frontier, pareto
from tierserve.autoscaler.sim.runner import Run, Runner

COLUMNS = (
    "policy", "knobs", "slo_attainment", "gpu_hours", "vs_oracle", "ttft_p95_ms",
    "tpot_p95_ms", "avg_replicas", "peak_replicas", "scale_events",
)  # fmt: skip

def target_sweeps(targets: Sequence[float]) -> dict[str, list[dict[str, Any]]]:
    """The baselines' sweeps over ``targets`` (in-flight requests per replica), each with
    its three scale-down settings (HPA's window, KPA's delay)."""
    return {
        "hpa": [{"target": t, "scale_down_stabilization_s": w}
                for w in (300.0, 120.0, 60.0) for t in targets],
        "kpa": [{"target": t, "scale_down_delay_s": d}
                for d in (0.0, 120.0, 300.0) for t in targets],
    }  # fmt: skip


DEFAULT_SWEEPS: Mapping[str, Sequence[Mapping[str, Any]]] = {
    # per-replica targets from 0.5 to 32 in-flight requests: the right one depends on the
    # model, the GPU and the traffic (a 2x H100 70B replica batches far more than a 2x
    # A100 one; short answers behind long prompts need about one request per replica);
    # steps of one where the conversation frontier bends (10-16), so interpolating
    # between settings never credits a baseline with a cost it would not reach at a
    # finer setting
    "hpa": [
        {"target": t, "scale_down_stabilization_s": w}
        for w in (300.0, 120.0, 60.0)
        for t in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
                  18.0, 20.0, 24.0, 32.0)
    ],
    "kpa": [
        {"target": t, "scale_down_delay_s": d}
        for d in (0.0, 120.0, 300.0)
        for t in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
                  20.0, 24.0, 32.0)
    ],
}

# Ours, for the frontier only (the headline row runs the defaults): the width of the
# scale-down band and the target utilization are the knobs that trade GPU-hours for
# attainment.
SLO_SWEEP: Sequence[Mapping[str, Any]] = [
    {"down_margin": m, "target_utilization": u} for u in (1.15, 1.0, 0.9) for m in (0.05, 0.15, 0.3)
]


def sweep(runner: Runner, name: str, settings: Sequence[Mapping[str, Any]]) -> list[Run]:
    return [runner.run(name, dict(knobs)) for knobs in settings]


def pick(runs: Sequence[Run], attainment: float) -> Run:
    """Cheapest run reaching ``attainment``; else the best-attaining one."""
    ok = [r for r in runs if float(str(r.summary["slo_attainment"])) >= attainment]
    if ok:
        return min(ok, key=lambda r: float(str(r.summary["gpu_hours"])))
    return max(runs, key=lambda r: float(str(r.summary["slo_attainment"])))


def compare(
    runner: Runner,
    *,
    slo_knobs: Mapping[str, Any] | None = None,
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]] = DEFAULT_SWEEPS,
) -> tuple[list[Run], dict[str, list[Run]]]:
    """Ours, the baselines (each the best of its sweep), fixed at the oracle's peak, and
    the oracle. A one-setting sweep is simply that setting."""
    ours = runner.run("slo", dict(slo_knobs or {}))
    target = float(str(ours.summary["slo_attainment"]))
    rows, swept = [ours], {}
    for name in ("hpa", "kpa"):
        runs = sweep(runner, name, sweeps[name])
        swept[name] = runs
        rows.append(pick(runs, target))
    rows.append(runner.run("fixed", {"replicas": runner.oracle().peak}))
    rows.append(runner.run("oracle"))
    return rows, swept


def frontiers(
    runner: Runner, swept: Mapping[str, Sequence[Run]], slo_sweep: Sequence[Mapping[str, Any]]
) -> dict[str, Frontier]:
    """Each policy's attainment/GPU-hours frontier: ours swept here, the baselines from
    the tuning sweeps already run."""
    runs = {"slo": sweep(runner, "slo", slo_sweep), **swept}
    return {name: pareto(name, [_point(r) for r in rs]) for name, rs in runs.items()}


def _point(run: Run) -> tuple[float, float]:
    s = run.summary
    return float(str(s["slo_attainment"])), float(str(s["gpu_hours"]))


def _cell(summary: Mapping[str, object], col: str) -> str:
    if col == "vs_oracle":
        oracle = float(str(summary["oracle_gpu_hours"]))
        return f"{float(str(summary['gpu_hours'])) / oracle:.2f}x" if oracle else "-"
    if col == "knobs":
        knobs = summary.get("knobs") or {}
        assert isinstance(knobs, dict)
        return (
            " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())
            or "-"
        )
    value = summary.get(col)
    if col == "slo_attainment" and isinstance(value, float):
        return f"{value:.2%}"
    return "-" if value is None else str(value)


def table(runs: Sequence[Run]) -> str:
    """A Markdown table, one row per run."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        lines.append("| " + " | ".join(_cell(run.summary, c) for c in COLUMNS) + " |")
    return "\n".join(lines)

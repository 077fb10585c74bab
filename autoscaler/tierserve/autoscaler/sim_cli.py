"""``tierserve sim``: replay a trace through simulated replicas under a scaling policy.

Examples::

    tierserve sim --trace ../shared/traces/azure-llm-2023-conv.csv --rate-scale 1.5 \\
        --policy slo --json
    tierserve sim --trace ... --compare --plot docs/img/autoscaler-azure.png
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tierserve.autoscaler.policy import POLICIES, parse_knobs
from tierserve.autoscaler.sim.compare import (
    DEFAULT_SWEEPS,
    SLO_SWEEP,
    compare,
    frontiers,
    table,
    target_sweeps,
)
from tierserve.autoscaler.sim.frontier import Frontier, bound_table, cost_table
from tierserve.autoscaler.sim.runner import Run, Runner, Scenario
from tierserve.autoscaler.sim.synthetic import SHAPES, synthetic
from tierserve.autoscaler.sim.trace import TraceError, load_trace, replicate_rate, scale_rate
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.cliflags import add_log_level

PLOT_EXTRA = "pip install 'tierserve[plot]'"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sim", help="simulate autoscaling policies on a request trace")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", help="CSV (Azure format) or JSONL trace")
    src.add_argument("--synthetic", choices=sorted(SHAPES),
                     help="a seeded synthetic trace of this shape, one hour (sim/synthetic.py)")
    p.add_argument("--profile", default="llama-3.1-70b-a100x2-est", help="engine profile")
    p.add_argument("--slo-ttft-ms", type=float, default=2500.0,
                   help="p95 time-to-first-token target (default: %(default)s)")
    p.add_argument("--slo-tpot-ms", type=float, default=100.0,
                   help="p95 time-per-output-token target (default: %(default)s)")
    p.add_argument("--target-attainment", type=float, default=0.99,
                   help="share of requests that must meet both targets (default: %(default)s)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the request rate")
    p.add_argument(
        "--rate-mode", choices=("replicate", "compress"), default="replicate",
        help="replicate: more requests over the same hour (seeded copies); compress: the "
        "same requests in less time (load moves faster against the cold start)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed of the replicated copies' placement (replicate mode) and of --synthetic",
    )  # fmt: skip
    p.add_argument("--cold-start-s", type=float, default=60.0,
                   help="how long a new replica takes to serve (default: %(default)s)")
    p.add_argument("--min-replicas", type=int, default=1,
                   help="never fewer replicas (default: %(default)s)")
    p.add_argument("--max-replicas", type=int, default=32,
                   help="never more replicas (default: %(default)s)")
    p.add_argument(
        "--scale-down-window-s", type=float, default=60.0,
        help="deployment's scale-down stabilization (ours; HPA/KPA use their own rules)",
    )  # fmt: skip
    p.add_argument("--policy", choices=sorted(POLICIES), default="slo",
                   help="scaling policy to run (default: %(default)s)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KNOB=VALUE",
        help="policy knob, e.g. --set target=12 (repeatable)",
    )  # fmt: skip
    p.add_argument("--compare", action="store_true", help="run all policies, print a table")
    p.add_argument(
        "--tune", action=argparse.BooleanOptionalAction, default=True,
        help="with --compare: sweep the baselines' knobs; --no-tune uses the --hpa/--kpa "
        "knobs (or their defaults)",
    )  # fmt: skip
    p.add_argument(
        "--tune-targets", type=_targets, metavar="T1,T2,...",
        help="with --compare: sweep the baselines over these per-replica targets only "
        "(with each of their three scale-down settings) instead of the default 17 and 16",
    )  # fmt: skip
    p.add_argument("--hpa", action="append", default=[], metavar="KNOB=VALUE",
                   help="with --compare --no-tune: an HPA baseline knob (repeatable)")
    p.add_argument("--kpa", action="append", default=[], metavar="KNOB=VALUE",
                   help="with --compare --no-tune: a KPA baseline knob (repeatable)")
    p.add_argument(
        "--frontier", action="store_true",
        help="with --compare: also sweep ours and print GPU-hours at equal attainment",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG (load, replicas, TTFT p95); needs "
                   f"the plot extra ({PLOT_EXTRA})")
    add_log_level(p)
    p.set_defaults(func=main)


def _targets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"targets must be positive, got {text!r}")
    return values


def build_runner(args: argparse.Namespace) -> Runner:
    base = (synthetic(args.synthetic, seed=args.seed) if args.synthetic
            else load_trace(args.trace))
    if args.rate_mode == "compress":
        trace = scale_rate(base, args.rate_scale)
    else:
        trace = replicate_rate(base, args.rate_scale, seed=args.seed)
    scenario = Scenario(
        profile=args.profile,
        slo=Slo(
            ttft_p95_ms=args.slo_ttft_ms,
            tpot_p95_ms=args.slo_tpot_ms,
            target_attainment=args.target_attainment,
        ),
        limits=Limits(
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            cold_start_s=args.cold_start_s,
            scale_down_stabilization_s=args.scale_down_window_s,
        ),
    )
    return Runner(trace, scenario)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        # before the simulation, which can run for minutes
        print(f"tierserve sim: --plot needs matplotlib, from the plot extra: {PLOT_EXTRA}",
              file=sys.stderr)
        return 2
    try:
        runner = build_runner(args)
        fronts: dict[str, Frontier] = {}
        knobs = parse_knobs(args.set, "--set")
        if args.compare:
            fixed = {n: [parse_knobs(getattr(args, n), f"--{n}")] for n in ("hpa", "kpa")}
            tuned = target_sweeps(args.tune_targets) if args.tune_targets else DEFAULT_SWEEPS
            sweeps = tuned if args.tune else fixed
            runs, swept = compare(runner, slo_knobs=knobs, sweeps=sweeps)
            if args.frontier:
                fronts = frontiers(runner, swept, [{**knobs, **k} for k in SLO_SWEEP])
        else:
            runs, swept = [runner.run(args.policy, knobs)], {}
    except (TraceError, ValueError, ValidationError) as exc:
        print(f"tierserve sim: {exc}", file=sys.stderr)
        return 2
    _report(args, runner, runs, swept)
    if fronts:
        _report_frontiers(args, runner, fronts, float(str(runs[0].summary["slo_attainment"])))
    print(f"# simulated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


def _report_frontiers(
    args: argparse.Namespace, runner: Runner, fronts: dict[str, Frontier], ours: float
) -> None:
    """GPU-hours each policy needs at the target attainment, a little above it, and at
    the attainment our policy reached with its defaults (the headline comparison), and
    the same as multiples of the clairvoyant bound at each level."""
    levels = [args.target_attainment + d for d in (0.0, 0.0025, 0.005, 0.0075)]
    levels = sorted({round(lv, 6) for lv in [*levels, ours] if lv < 1.0})
    bound_at = runner.bound().gpu_hours_at
    if args.json:
        out = {n: [list(p) for p in f.points] for n, f in fronts.items()}
        bounds = {f"{lv:.4f}": bound_at(lv) for lv in levels}
        print(json.dumps({"frontiers": out, "clairvoyant_bound": bounds}, indent=2))
        return
    print("\nfrontiers (attainment, GPU-hours), Pareto-optimal runs of each sweep:")
    for name, front in fronts.items():
        print(f"  {name}: " + ", ".join(f"({a:.2%}, {c:.3f})" for a, c in front.points))
    print("\nGPU-hours at equal attainment (interpolated on each frontier):")
    print(cost_table(fronts, levels))
    print("\nthe same against the clairvoyant bound at each attainment (load known, scaling")
    print("instant, misses placed where they are cheapest; sim/bound.py):")
    print(bound_table(fronts, bound_at, levels))


def _report(
    args: argparse.Namespace, runner: Runner, runs: list[Run], swept: dict[str, list[Run]]
) -> None:
    if args.json:
        out: Any = [r.summary for r in runs] if args.compare else runs[0].summary
        if swept and args.tune:
            out = {"table": out, "sweeps": {k: [r.summary for r in v] for k, v in swept.items()}}
        print(json.dumps(out, indent=2))
    else:
        print(table(runs))
        for name, sweep_runs in swept.items() if args.tune else ():
            print(f"\n{name} sweep (tuning):\n{table(sweep_runs)}")
    if args.plot is not None:
        from tierserve.autoscaler.sim.plot import plot_runs

        oracle = runner.oracle()
        shown = [r.result for r in runs if r.result.policy != "fixed"]
        name = args.synthetic or Path(args.trace).name
        plot_runs(
            shown,
            args.plot,
            title=f"{name} x{args.rate_scale:g} ({args.rate_mode}), "
            f"{args.profile}, "
            f"SLO TTFT {args.slo_ttft_ms:g} ms / TPOT {args.slo_tpot_ms:g} ms",
            ttft_slo_ms=args.slo_ttft_ms,
            tpot_slo_ms=args.slo_tpot_ms,
            oracle=(oracle.bucket_s, oracle.replicas),
        )

"""Check the TPOT-tail model against the oracle, minute by minute.

    python -m tierserve.dev.tail_check --synthetic prefill-heavy [--budget 0.5] [--rows]

For every minute of a trace: the oracle's replica count (``Runner.oracle()``, instant
scaling, the target met in that minute) and the count
:func:`tierserve.core.tpot_tail.replicas_for_tpot_tail` gives from that minute's own
request rate, mean prompt length and answer lengths (their quantiles, as the policy
reads them off the engines' answer-length histograms; ``--exponential``: the
exponential of their mean), at ``--budget`` of the error budget.
Prints the sums over the run and the median ratio (docs/autoscaler.md).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.synthetic import SHAPES, synthetic
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.tpot_tail import quantile_midpoints, replicas_for_tpot_tail


def _answers(lengths: Sequence[int]) -> tuple[float, ...]:
    """The minute's answer lengths at the tail model's quantile points."""
    ordered = sorted(lengths)
    return quantile_midpoints(lambda q: float(ordered[min(len(ordered) - 1,
                                                          int(q * len(ordered)))]))


def per_minute(runner: Runner, budget: float,
               exponential: bool = False) -> list[tuple[int, float, int, int]]:
    """(minute, requests per minute, oracle count, floor) for every minute with traffic."""
    sched, trace, slo = runner.oracle(), runner.trace, runner.scenario.slo
    rows = []
    for b, oracle in enumerate(sched.replicas):
        lo, hi = b * sched.bucket_s, (b + 1) * sched.bucket_s
        reqs = [r for r in trace if lo <= r.arrival_s < hi]
        if not reqs:
            continue
        mix = runner.capacity.prefill_mix(statistics.fmean(r.prompt_tokens for r in reqs),
                                          statistics.fmean(r.output_tokens for r in reqs),
                                          slo.tpot_p95_ms,
                                          None if exponential else
                                          _answers([r.output_tokens for r in reqs]))
        if mix is None:
            raise ValueError(f"profile {runner.profile.name!r} has no TPOT-tail model "
                             "(one sequence at a time)")
        rate = len(reqs) / sched.bucket_s
        floor = replicas_for_tpot_tail(rate, mix, budget * (1 - slo.target_attainment),
                                       cap=4 * runner.scenario.limits.max_replicas)
        rows.append((b, rate * 60, oracle, floor))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tierserve.dev.tail_check", description=__doc__)
    p.add_argument("--synthetic", choices=sorted(SHAPES), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="llama-3.3-70b-h100x2")
    p.add_argument("--slo-tpot-ms", type=float, default=40.0)
    p.add_argument("--budget", type=float, default=0.5, help="share of the error budget")
    p.add_argument("--rows", action="store_true", help="print every minute")
    p.add_argument("--exponential", action="store_true",
                   help="answer lengths exponential with the minute's mean (the model "
                        "without the observed shape)")
    args = p.parse_args(argv)
    scenario = Scenario(profile=args.profile, slo=Slo(ttft_p95_ms=2500,
                                                      tpot_p95_ms=args.slo_tpot_ms),
                        limits=Limits(max_replicas=32, cold_start_s=60))
    rows = per_minute(Runner(synthetic(args.synthetic, seed=args.seed), scenario), args.budget,
                      args.exponential)
    if args.rows:
        print("minute  requests/min  oracle  floor")
        for b, per_min, oracle, floor in rows:
            print(f"{b:6d}  {per_min:12.0f}  {oracle:6d}  {floor:5d}")
    oracle_sum, floor_sum = sum(r[2] for r in rows), sum(r[3] for r in rows)
    ratio = statistics.median(r[3] / r[2] for r in rows)
    print(f"{args.synthetic}: oracle {oracle_sum} replica-minutes, floor {floor_sum} "
          f"({floor_sum / oracle_sum:.2f}x), median per-minute ratio {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

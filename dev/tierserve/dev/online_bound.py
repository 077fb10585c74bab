"""An upper bound on the attainment any online policy can reach through a sudden jump.

    python -m tierserve.dev.online_bound --synthetic flash-crowd [--at-s 1200] \\
        [--counts 2 3 4 5 6 7]

A policy that sees only the past holds, when the jump comes, what it holds on the
steady traffic before it, and with a cold start ``c`` no replica it adds after the jump
serves before ``jump + c``. So for a count ``k`` at the jump, no online policy does
better than this replayed schedule (instant scaling, as the oracle's): the oracle's
counts everywhere, ``k`` in the buckets that overlap ``[jump, jump + c)``, and
``maxReplicas`` for ``--recover-s`` after them (which can only flatter it: more replicas
never add a miss here). The smallest ``k`` that reaches the target is what an online
policy must already hold on the steady traffic before the jump; since it cannot tell
those minutes from any other steady minutes of that rate, it holds ``k`` on all of them,
and the price is ``k`` against the oracle's count there (docs/autoscaler.md).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tierserve.autoscaler.policy.baselines import OraclePolicy
from tierserve.autoscaler.sim.engine import Simulation
from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.synthetic import SHAPES, synthetic
from tierserve.autoscaler.types import Limits, Slo


@dataclass(frozen=True)
class BoundRow:
    count: int  # replicas held at the jump
    attainment: float  # the most any online policy holding that many can reach
    forced: tuple[int, ...]  # the buckets held at ``count``


def forced_buckets(bucket_s: float, at_s: float, cold_start_s: float) -> range:
    """The buckets that overlap ``[at_s, at_s + cold_start_s)``."""
    first = int(at_s // bucket_s)
    return range(first, max(first + 1, math.ceil((at_s + cold_start_s) / bucket_s)))


def bounded_schedule(oracle: Sequence[int], forced: range, count: int, recover: int,
                     max_replicas: int) -> list[int]:
    """The oracle's schedule with ``count`` in the ``forced`` buckets and
    ``max_replicas`` in the ``recover`` buckets after them."""
    out = list(oracle)
    for b in forced:
        if b < len(out):
            out[b] = count
    for b in range(forced.stop, min(forced.stop + recover, len(out))):
        out[b] = max_replicas
    return out


def bound(runner: Runner, at_s: float, counts: Sequence[int],
          recover_s: float = 300.0) -> list[BoundRow]:
    """One row per count: the best attainment an online policy holding it at ``at_s``
    can reach (one noise draw: the profiles this is for are deterministic)."""
    sched, sc = runner.oracle(), runner.scenario
    forced = forced_buckets(sched.bucket_s, at_s, sc.limits.cold_start_s)
    recover = math.ceil(recover_s / sched.bucket_s)
    rows = []
    for k in counts:
        schedule = bounded_schedule(sched.replicas, forced, k, recover, sc.limits.max_replicas)
        policy = OraclePolicy(schedule=tuple(schedule), bucket_s=sched.bucket_s)
        settings = runner.settings(10.0, initial=max(1, schedule[0]))
        result = Simulation(runner.trace, runner.profile, settings, policy,
                            policy_name="online-bound", cold_start_s=0.0).run()
        met = result.met(sc.slo)
        rows.append(BoundRow(k, sum(met) / len(met), tuple(forced)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tierserve.dev.online_bound",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", choices=sorted(SHAPES), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--at-s", type=float, default=1200.0, help="when the jump starts")
    p.add_argument("--counts", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7])
    p.add_argument("--profile", default="llama-3.3-70b-h100x2")
    p.add_argument("--slo-tpot-ms", type=float, default=40.0)
    p.add_argument("--cold-start-s", type=float, default=60.0)
    p.add_argument("--recover-s", type=float, default=300.0)
    args = p.parse_args(argv)
    scenario = Scenario(profile=args.profile,
                        slo=Slo(ttft_p95_ms=2500, tpot_p95_ms=args.slo_tpot_ms),
                        limits=Limits(max_replicas=32, cold_start_s=args.cold_start_s))
    runner = Runner(synthetic(args.synthetic, seed=args.seed), scenario)
    sched = runner.oracle()
    before = sched.replicas[max(0, int(args.at_s // sched.bucket_s) - 10):
                            int(args.at_s // sched.bucket_s)]
    print(f"# oracle: {sched.gpu_hours:.3f} GPU-hours; its counts in the 10 buckets "
          f"before the jump: {list(before)}")
    for row in bound(runner, args.at_s, args.counts, args.recover_s):
        print(f"holding {row.count} at the jump (buckets {list(row.forced)}): at most "
              f"{100 * row.attainment:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m tierserve.dev.replay``: calibrate the llama.cpp CPU profile, or compare
real replicas with ``tierserve sim`` on a slice of a trace.

    python -m tierserve.dev.replay calibrate [--prompts 16 128 384] [--output 64] \\
        [--replicas 2 --open-loop-s 150 --open-loop-utilisation 0.6 --open-loop-seed 5] \\
        [--start-cycles 3]
    python -m tierserve.dev.replay compare --trace ../shared/traces/azure-llm-2023-conv.csv \\
        [--profile smollm2-135m-cpu1] [--replicas 2] [--runs fixed slo] [--json FILE]
    python -m tierserve.dev.replay probe --profile-file p.json --save ref.json   # after calibrate
    python -m tierserve.dev.replay table run1.json run2.json ...   # sim vs the real median

Both start their own Ray (2 CPUs, no dashboard) and router on 127.0.0.1 and stop them.
Run one real run per process (``--runs fixed``, then ``--runs slo``): a second Ray started
in the same process after the first was shut down crashed once here (a Ray bug).
The machine's load (``uptime``) is printed with each run: the two cores are shared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.trace import Trace, TraceError, load_trace
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.latency import LatencyProfile
from tierserve.dev.replay import calibrate, compare, repeats, startup
from tierserve.dev.replay.client import replay
from tierserve.dev.replay.interference import OpenLoop, fit_interference, timed
from tierserve.dev.replay.probe import HostSpeed, probe
from tierserve.dev.replay.slicing import SliceSpec, slice_trace, write_jsonl
from tierserve.dev.replay.stack import MODEL, RealStack


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tierserve.dev.replay", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    cal = sub.add_parser("calibrate", help="measure the real engine and fit a profile")
    cal.add_argument("--prompts", type=int, nargs="+", default=[32, 64, 128])
    cal.add_argument("--output", type=int, default=32)
    cal.add_argument("--rounds", type=int, default=5)
    cal.add_argument("--replicas", type=int, default=1,
                     help="replicas; the others are kept busy by a client each")
    defaults = OpenLoop()
    cal.add_argument("--open-loop-s", type=float, default=0.0,
                     help="then an open loop this long (needs --replicas >= 2): fits the "
                     "busy-neighbour slowdown and the alone step and prefill")
    cal.add_argument("--open-loop-utilisation", type=float, default=defaults.utilisation)
    cal.add_argument("--open-loop-seed", type=int, default=defaults.seed)
    cal.add_argument("--open-loop-prompts", type=int, nargs=2, default=defaults.prompts)
    cal.add_argument("--open-loop-outputs", type=int, nargs=2, default=defaults.outputs)
    cal.add_argument("--start-cycles", type=int, default=0,
                     help="then this many scale-ups 1 -> 2 under a closed loop: fits what a "
                     "starting replica costs the serving one and times the start")
    cal.add_argument("--save", type=Path, help="write the fitted profile here (JSON), for "
                     "compare --profile-file")
    cmp = sub.add_parser("compare", help="replay a slice on real replicas and in the simulator")
    cmp.add_argument("--trace", required=True)
    cmp.add_argument("--profile", default="smollm2-135m-cpu1")
    cmp.add_argument("--profile-file", type=Path,
                     help="a profile calibrate --save wrote (this machine's fit); "
                     "overrides --profile")
    for name, field in SliceSpec.model_fields.items():
        cmp.add_argument(f"--{name.replace('_', '-')}", type=type(field.default),
                         default=field.default)
    cmp.add_argument("--replicas", type=int, default=2, help="fixed replica count")
    cmp.add_argument("--runs", nargs="+", choices=("fixed", "slo", "observe", "prescaled"),
                     default=["fixed"],
                     help="observe: the fixed count with the SLO controller scraping and "
                     "deciding beside it, bounded to that count (never writes); prescaled: "
                     "the fixed count, started at 1 and scaled in place before the replay")
    cmp.add_argument("--sim-only", action="store_true", help="skip the real replicas")
    cmp.add_argument("--probe-rounds", type=int, default=0,
                     help="probe the host's speed with this many alone requests before each "
                     "real replay; that run's simulated twin then uses the profile at the "
                     "probed speed")
    cmp.add_argument("--real-from", type=Path,
                     help="with --sim-only: the real rows of an earlier compare --json, kept "
                     "in this one's output beside twins simulated anew (after a change to "
                     "the simulator)")
    cmp.add_argument("--probe-reference", type=Path,
                     help="a probe taken right after the calibration (probe --save): each "
                     "run's speed is then taken against it, not against the profile")
    cmp.add_argument("--slo-ttft-ms", type=float, default=2500.0)
    cmp.add_argument("--slo-tpot-ms", type=float, default=40.0)
    cmp.add_argument("--target-attainment", type=float, default=0.9)
    cmp.add_argument("--cold-start-s", type=float, default=5.0)
    cmp.add_argument("--replica-start-s", type=float,
                     help="how long a new real replica takes to serve (the SLO runs' "
                     "'running' minus 'writes' times), for the simulated one; default: "
                     "--cold-start-s, which stays the policy's assumption")
    cmp.add_argument("--scale-down-window-s", type=float, default=30.0)
    cmp.add_argument("--sim-seeds", type=int, default=9,
                     help="host-noise draws per simulated run (noisy profiles): the median")
    cmp.add_argument("--json", type=Path, help="also write the rows as JSON here")
    prb = sub.add_parser("probe", help="the host's alone prefill and step against a profile "
                         "(run right after calibrate, for compare --probe-reference)")
    prb.add_argument("--profile-file", type=Path, required=True)
    prb.add_argument("--rounds", type=int, default=20)
    prb.add_argument("--save", type=Path, required=True)
    tab = sub.add_parser("table", help="several compare --json files: sim vs the real median")
    tab.add_argument("files", type=Path, nargs="+")
    tab.add_argument("--sim-from", type=Path,
                     help="take the simulated rows from this compare --json file only (a "
                     "--sim-only run with another profile or replica start); the real "
                     "files' own simulated rows are ignored")
    for q in (cal, cmp, prb):
        q.add_argument("--workdir", type=Path, help="state directory (default: a temporary one)")
    return p


async def _calibrate(args: argparse.Namespace, workdir: Path) -> int:
    loop = None
    if args.open_loop_s:
        loop = OpenLoop(args.open_loop_utilisation, args.open_loop_s, args.open_loop_seed,
                        tuple(args.open_loop_prompts), tuple(args.open_loop_outputs))
        if args.replicas < 2:
            raise ValueError(f"--open-loop-s needs --replicas >= 2; got {args.replicas}")
    async with RealStack(workdir, args.replicas) as stack:
        print(f"# uptime before: {uptime()}")
        observed: list[calibrate.Observation] = []
        points = await calibrate.measure(stack.base_url, MODEL, args.prompts, args.output,
                                         args.rounds, neighbours=args.replicas - 1,
                                         observed=observed)
        print(f"# uptime after the closed loop: {uptime()}")
        for pt in points:
            print(pt)
        fitted, err = calibrate.fit_profile(points, "fitted here")
        print(f"# worst error {100 * err:.1f}%")
        fitted = calibrate.fit_noise(observed, fitted)
        print(fitted)
        if loop is not None:
            fitted = await _open_loop(stack.base_url, loop, fitted, args.replicas, workdir)
            print(fitted)
        if args.start_cycles:
            start = await startup.measure_start(
                stack, startup.StartPhase(cycles=args.start_cycles), fitted)
            print(start, flush=True)
            fitted = start.profile
        if args.save:
            compare.save_profile(fitted, args.save)
    return 0


async def _open_loop(base_url: str, loop: OpenLoop, fitted: LatencyProfile, replicas: int,
                     workdir: Path) -> LatencyProfile:
    rate = loop.rate(fitted, replicas)
    trace = loop.trace(rate)
    print(f"# open loop: {len(trace)} requests at {rate:.3f}/s ({loop}); "
          f"uptime {uptime()}", flush=True)
    outcomes = await replay(base_url, MODEL, trace, seed=loop.seed)
    print(f"# uptime after the open loop: {uptime()}")
    requests = timed(trace, outcomes)
    (workdir / "open-loop.json").write_text(json.dumps([dataclasses.asdict(r)
                                                        for r in requests]))
    fit = fit_interference(requests, fitted, replicas)
    print(fit)
    return fit.profile


async def _compare(args: argparse.Namespace, workdir: Path) -> int:
    if args.real_from and not args.sim_only:
        raise ValueError("--real-from goes with --sim-only (the real rows come from the file)")
    spec = SliceSpec(**{k: getattr(args, k) for k in SliceSpec.model_fields})
    trace = slice_trace(load_trace(args.trace), spec)
    write_jsonl(trace, workdir / "slice.jsonl")
    slo = Slo(ttft_p95_ms=args.slo_ttft_ms, tpot_p95_ms=args.slo_tpot_ms,
              target_attainment=args.target_attainment)
    limits = Limits(min_replicas=1, max_replicas=args.replicas, cold_start_s=args.cold_start_s,
                    scale_down_stabilization_s=args.scale_down_window_s)
    profile = compare.load_profile(args.profile_file) if args.profile_file else None
    runner = compare.make_runner(trace, Scenario(profile=args.profile, slo=slo, limits=limits,
                                                 initial_replicas=1,
                                                 replica_start_s=args.replica_start_s), profile)
    print(f"# slice: {len(trace)} requests over {trace[-1].arrival_s:.0f} s ({spec}); "
          f"written to {workdir / 'slice.jsonl'}")
    earlier = json.loads(args.real_from.read_text()) if args.real_from else {}
    reference = _load_speed(args.probe_reference) if args.probe_reference else None
    rows: dict[str, dict[str, Any]] = {}
    for run in args.runs:
        label = {"fixed": f"{args.replicas} replicas",
                 "observe": f"{args.replicas} replicas, controller observing",
                 "prescaled": f"{args.replicas} replicas, scaled in place from 1",
                 "slo": f"SLO policy 1..{args.replicas}"}[run]
        if not args.sim_only:
            rows[f"real, {label}"] = await _real(args, run, trace, runner, workdir, slo)
            print(json.dumps({f"real, {label}": _brief(rows[f"real, {label}"])}), flush=True)
        elif f"real, {label}" in earlier:
            rows[f"real, {label}"] = earlier[f"real, {label}"]
        # the simulator has no controller cost: an observing run simulates as fixed
        knobs = ({"interval_s": compare.INTERVAL_S} if run == "slo"
                 else {"replicas": args.replicas})
        sim_kind = "slo" if run == "slo" else "fixed"
        seeds = args.sim_seeds if runner.profile.noise_sigma else 1
        speed = _speed(rows.get(f"real, {label}", {}), reference)
        twin = runner if speed is None else compare.make_runner(
            trace, runner.scenario, HostSpeed(**speed).scaled(runner.profile))
        rows[f"sim, {label}"] = {**compare.sim_summary(twin, sim_kind, knobs, seeds),
                                 **({"host_speed": speed} if speed else {})}
    print(compare.table(rows))
    print(json.dumps({k: _brief(v) for k, v in rows.items()}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _load_speed(path: Path) -> HostSpeed:
    try:
        return HostSpeed(**json.loads(path.read_text()))
    except (OSError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a saved probe ({exc})") from exc


def _speed(real: dict[str, Any], reference: HostSpeed | None) -> dict[str, Any] | None:
    """The host speed a real run's twin is simulated at: its probe against the profile,
    or against the reference probe when there is one."""
    if "host_speed" not in real:
        return None
    speed = HostSpeed(**real["host_speed"])
    return dataclasses.asdict(speed if reference is None else speed.relative_to(reference))


async def _probe(args: argparse.Namespace, workdir: Path) -> int:
    profile = compare.load_profile(args.profile_file)
    async with RealStack(workdir, 2) as stack:
        speed = await probe(stack.base_url, MODEL, profile, args.rounds)
    print(speed)
    args.save.write_text(json.dumps(dataclasses.asdict(speed)))
    return 0


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its per-request outcomes (the ``--json`` file keeps them)."""
    return {k: v for k, v in row.items() if k != "outcomes"}


async def _real(args: argparse.Namespace, run: str, trace: Trace, runner: Runner,
                workdir: Path, slo: Slo) -> dict[str, Any]:
    before = uptime()
    if run in ("fixed", "prescaled"):
        real = await compare.real_fixed(trace, args.replicas, workdir / f"real-{run}", slo,
                                        scaled_from=1 if run == "prescaled" else None,
                                        probe_profile=runner.profile,
                                        probe_rounds=args.probe_rounds)
    else:
        real = await compare.real_slo(trace, runner, workdir / f"real-{run}",
                                      observe=args.replicas if run == "observe" else None,
                                      probe_rounds=args.probe_rounds)
    return {**real, "uptime_before": before, "uptime_after": uptime()}


def _table(args: argparse.Namespace) -> int:
    runs = repeats.load(args.files)
    if args.sim_from:
        runs = [{k: v for k, v in run.items() if k.startswith("real")} for run in runs]
        runs += repeats.load([args.sim_from])
    rows = repeats.merge(runs)
    print(compare.table(rows))
    for name, row in rows.items():
        if ", run " in name:
            print(f"# {name}: uptime before {row.get('uptime_before', '?')}")
        elif name.startswith("real"):
            print(f"# {name}: real-vs-real spread (max - min) {repeats.spread(rows, name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "table":
        return _table(args)
    with tempfile.TemporaryDirectory(prefix="tierserve-replay-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            if args.cmd == "calibrate":
                return asyncio.run(_calibrate(args, workdir))
            if args.cmd == "probe":
                return asyncio.run(_probe(args, workdir))
            return asyncio.run(_compare(args, workdir))
        except (TraceError, ValueError) as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    raise SystemExit(main())

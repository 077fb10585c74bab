"""One trace slice, four runs: real replicas and the simulator, at a fixed replica count
and under the SLO policy; the same summary for each and a side-by-side table.

Both sides use the same slice, SLO, limits and capacity (the simulator's, from the
fitted profile), so a difference is the engine model's, not the policy inputs'. The
live SLO run is the autoscaler's own :class:`Controller` with the scrape source on the
Ray Serve application's vLLM metrics, every 2 s, writing through
:class:`~tierserve.dev.replay.stack.LocalScaleWriter`; the simulator runs the policy
every 2 s on 2 s samples too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tierserve.autoscaler.controller import Controller, ScaleTarget
from tierserve.autoscaler.sim.results import percentile
from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.trace import Trace
from tierserve.autoscaler.sources import ScrapeSource
from tierserve.autoscaler.types import Slo
from tierserve.core.latency import LatencyProfile
from tierserve.dev.replay.client import Outcome, replay
from tierserve.dev.replay.cpu import CpuSampler
from tierserve.dev.replay.probe import probe
from tierserve.dev.replay.stack import MODEL, LocalScaleWriter, RealStack

INTERVAL_S = 2.0
KEYS = ("ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms", "attainment")


def summary(ttft_s: Sequence[float], tpot_s: Sequence[float], slo: Slo,
            extra: Mapping[str, Any]) -> dict[str, Any]:
    """p50/p95 (NaN, i.e. unfinished or failed, counts as the worst) and attainment."""
    met = [a <= slo.ttft_p95_ms / 1000 and b <= slo.tpot_p95_ms / 1000
           for a, b in zip(ttft_s, tpot_s, strict=True)]
    return {"requests": len(met),
            "ttft_p50_ms": round(percentile(ttft_s, 50) * 1000, 1),
            "ttft_p95_ms": round(percentile(ttft_s, 95) * 1000, 1),
            "tpot_p50_ms": round(percentile(tpot_s, 50) * 1000, 2),
            "tpot_p95_ms": round(percentile(tpot_s, 95) * 1000, 2),
            "attainment": round(sum(met) / len(met), 4) if met else math.nan, **extra}


def real_summary(outcomes: Sequence[Outcome], slo: Slo, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The summary, plus each request's (due, first token, end, tokens) for a look at
    where in the run the misses are."""
    failed = [o.error for o in outcomes if o.error]
    return summary([o.ttft_s for o in outcomes], [o.tpot_s for o in outcomes], slo,
                   {"failed": len(failed), **({"errors": failed[:3]} if failed else {}),
                    **extra, "outcomes": [[round(o.due_s, 3), round(o.first_s, 3),
                                           round(o.end_s, 3), o.tokens] for o in outcomes]})


async def _replay(stack: RealStack, trace: Trace) -> tuple[list[Outcome], dict[str, Any]]:
    """The replay, and the CPU seconds each role of the stack used during it."""
    async with CpuSampler() as cpu:
        outcomes = await replay(stack.base_url, MODEL, trace)
    return outcomes, {"cpu_s": cpu.roles()}


async def _probe(stack: RealStack, profile: LatencyProfile | None, rounds: int) -> dict[str, Any]:
    """``{"host_speed": ...}`` from a probe of ``rounds`` requests (none without a
    profile or rounds): see :mod:`tierserve.dev.replay.probe`."""
    if profile is None or rounds < 1:
        return {}
    speed = await probe(stack.base_url, MODEL, profile, rounds)
    return {"host_speed": dataclasses.asdict(speed)}


def sim_summary(runner: Runner, policy: str, knobs: Mapping[str, Any],
                seeds: int = 1) -> dict[str, Any]:
    """The simulated run; with a noisy profile, the median of each figure over ``seeds``
    host-noise draws (one draw is as much a sample as one real run)."""
    rows = []
    for seed in range(seeds):
        run = runner.run(policy, knobs, noise_seed=seed)
        res = run.result
        rows.append(summary(res.ttft_s(), res.tpot_s(), runner.scenario.slo,
                            {"avg_replicas": run.summary["avg_replicas"],
                             "scale_events": run.summary["scale_events"]}))
    if seeds == 1:
        return rows[0]
    return {**rows[0], "seeds": seeds, **{k: statistics.median(r[k] for r in rows)
                                          for k in (*KEYS, "avg_replicas")}}


async def real_fixed(trace: Trace, replicas: int, workdir: Path, slo: Slo,
                     scaled_from: int | None = None, probe_profile: LatencyProfile | None = None,
                     probe_rounds: int = 0) -> dict[str, Any]:
    """``replicas`` from the start; with ``scaled_from``, started with that many and
    scaled in place (the Serve application re-applied) before the replay, as the SLO
    policy scales: a replica added in place against replicas started together, without
    the start-up queue of a scale-up under load. With ``probe_rounds``, a probe of the
    host's speed against ``probe_profile`` first."""
    async with RealStack(workdir, scaled_from or replicas) as stack:
        if scaled_from:
            await stack.scale(replicas)
            await stack.wait_ready(replicas, 300)
        speed = await _probe(stack, probe_profile, probe_rounds)
        outcomes, cpu = await _replay(stack, trace)
    return real_summary(outcomes, slo, {"avg_replicas": float(replicas), "scale_events": 0,
                                        **cpu, **speed})


async def real_slo(trace: Trace, runner: Runner, workdir: Path,
                   observe: int | None = None, probe_rounds: int = 0) -> dict[str, Any]:
    """The SLO policy scaling real replicas from one, while the slice replays. With
    ``observe``, that many replicas from the start and the controller bounded to them:
    it scrapes and decides as in an SLO run but never writes, which tells the cost of
    running it on these cores from the cost of scaling. With ``probe_rounds``, a probe of
    the host's speed against the runner's profile first, before the controller starts."""
    sc = runner.scenario
    limits = sc.limits if observe is None else sc.limits.model_copy(
        update={"min_replicas": observe, "max_replicas": observe})
    async with RealStack(workdir, observe or 1) as stack, aiohttp.ClientSession() as session:
        speed = await _probe(stack, runner.profile, probe_rounds)
        target = ScaleTarget(namespace="replay", name=MODEL, slo=sc.slo, capacity=runner.capacity,
                             limits=limits, endpoints=(stack.metrics_url,))
        writer = LocalScaleWriter(stack)
        ctl = Controller([target], ScrapeSource(session), writer, clock=time.monotonic,
                         interval_s=INTERVAL_S, window_s=sc.window_s)
        stop = asyncio.Event()
        control = asyncio.create_task(ctl.run(stop))
        t0 = time.monotonic()
        try:
            outcomes, cpu = await _replay(stack, trace)
        finally:
            stop.set()
            await control
        t_end = time.monotonic()
    avg = float(observe) if observe else _average_replicas(writer.writes, t0, t_end)
    return real_summary(outcomes, sc.slo, {
        "avg_replicas": round(avg, 3), "scale_events": len(writer.writes),
        "writes": [(round(t - t0, 1), n, reason[:80]) for t, n, reason in writer.writes],
        # when the controller saw the running replica count change (its cold start)
        "running": [(round(t - t0, 1), n) for t, n in writer.running], **cpu, **speed})


def _average_replicas(writes: Sequence[tuple[float, int, str]], t0: float, t1: float) -> float:
    """Time-weighted spec replicas over [t0, t1], starting from one."""
    total, count, at = 0.0, 1, t0
    for t, n, _ in writes:
        total += count * (max(t, t0) - at)
        count, at = n, max(t, t0)
    total += count * (t1 - at)
    return total / (t1 - t0) if t1 > t0 else float(count)


def make_runner(trace: Trace, scenario: Scenario,
                profile: LatencyProfile | None = None) -> Runner:
    return Runner(trace, scenario, profile)


def save_profile(profile: LatencyProfile, path: Path) -> None:
    """A fitted profile as JSON, for ``compare --profile-file`` on the same machine."""
    path.write_text(json.dumps(dataclasses.asdict(profile), indent=1))


def load_profile(path: Path) -> LatencyProfile:
    try:
        return LatencyProfile(**json.loads(path.read_text()))
    except (OSError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a saved latency profile ({exc})") from exc


def table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one row per run, and under each simulated run its error against the real
    one of the same setting (relative on the latencies, points on attainment)."""
    head = "| run | requests | TTFT p50 / p95 ms | TPOT p50 / p95 ms | attainment | avg replicas |"
    lines = [head, "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['requests']} | {r['ttft_p50_ms']} / {r['ttft_p95_ms']} | "
                     f"{r['tpot_p50_ms']} / {r['tpot_p95_ms']} | {r['attainment']:.3f} | "
                     f"{r.get('avg_replicas', '')} |")
        real = rows.get(name.replace("sim", "real"))
        if name.startswith("sim") and real is not None:
            lines.append(f"| sim vs real | | {_rel(r, real, 'ttft_p50_ms')} / "
                         f"{_rel(r, real, 'ttft_p95_ms')} | {_rel(r, real, 'tpot_p50_ms')} / "
                         f"{_rel(r, real, 'tpot_p95_ms')} | "
                         f"{100 * (r['attainment'] - real['attainment']):+.1f} pt | |")
    return "\n".join(lines)


def _rel(sim: Mapping[str, Any], real: Mapping[str, Any], key: str) -> str:
    return f"{100 * (sim[key] / real[key] - 1):+.1f}%" if real[key] else "n/a"

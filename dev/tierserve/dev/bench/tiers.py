"""``tierserve-dev bench tiers``: real tiering, measured on real models through the router.

Starts the two llama.cpp engines of the examples (``tierserve engine``, one thread each)
and the router (in this process, on 127.0.0.1), then:

1. calibration half: every configuration alone (``--setups``; a configuration is a tier:
   a deployment plus request options) answers the even-numbered questions, with
   log-probabilities; each ordered pair's thresholds are chosen from these answers
   (:mod:`tierserve.dev.tierbench.calibrate`) and the pair to report is picked (or given
   with ``--pair FAST,SLOW``);
2. report half: every configuration alone, then the chosen pair through the real router's
   tiers with (a) the prompt classifier, (b) escalation on low mean log-probability,
   (c) both, at the calibrated thresholds, answer the odd-numbered questions.

It prints the pair table (calibration half) and the side-by-side table (report half), or
all of it as JSON with ``--json``. Nothing is simulated on the report half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tierserve.core.routerconfig import (
    DeploymentConfig,
    RequestOptions,
    RouteConfig,
    RouterConfig,
    TierConfig,
    VariantConfig,
)
from tierserve.dev.cluster.procs import free_ports
from tierserve.dev.testing import serve_router
from tierserve.dev.tierbench import calibrate as cal
from tierserve.dev.tierbench import report
from tierserve.dev.tierbench.questions import DEFAULT_PATH, Question, load_questions
from tierserve.dev.tierbench.runner import Client, Engine, Run
from tierserve.dev.tierbench.setup import (
    DEFAULT_SETUPS,
    SETUPS,
    Model,
    models,
    start_engine,
    stop_engine,
)
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.app import Router
from tierserve.routing.plugins.classifier import HeuristicClassifier

POLICIES = ("classifier", "confidence", "both")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", type=Path, default=DEFAULT_PATH)
    p.add_argument("--setups", default=",".join(DEFAULT_SETUPS),
                   help=f"configurations to measure, of: {', '.join(SETUPS)}")
    p.add_argument("--pair", help="FAST,SLOW: report this pair instead of the best one")
    p.add_argument("--limit", type=int, help="at most this many questions per half")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="accuracy the calibration may give up for cost (default 2 points)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")


def run(args: argparse.Namespace) -> int:
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in setups if s not in SETUPS]
    pair = tuple(args.pair.split(",")) if args.pair else None
    if unknown or len(setups) < 2 or (pair and (len(pair) != 2 or set(pair) - set(setups))):
        print(f"bench tiers: --setups needs two or more of {', '.join(SETUPS)} and --pair two "
              f"of them (got --setups {args.setups!r}, --pair {args.pair!r})", file=sys.stderr)
        return 2
    out = asyncio.run(_bench(load_questions(args.questions), setups, pair, args))
    print(json.dumps(out, indent=2) if args.json else _text(out))
    return 0


def _halves(qs: Sequence[Question], limit: int | None) -> tuple[list[Question], list[Question]]:
    """Alternate items: each category is split evenly (the file groups them); ``limit``
    keeps evenly spaced items of each half, so every category stays in."""
    calib, rep = list(qs[0::2]), list(qs[1::2])
    if not limit:
        return calib, rep
    return _spaced(calib, limit), _spaced(rep, limit)


def _spaced(items: list[Question], limit: int) -> list[Question]:
    if limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


@contextlib.asynccontextmanager
async def _engines(used: Mapping[str, Model]) -> AsyncIterator[list[Engine]]:
    ports = free_ports(len(used))
    with tempfile.TemporaryDirectory(prefix="tierbench-") as tmp:
        procs = {name: start_engine(m, port, Path(tmp) / f"{name}.log")
                 for (name, m), port in zip(used.items(), ports, strict=True)}
        engines = [Engine(n, f"http://127.0.0.1:{port}", procs[n].pid)
                   for n, port in zip(used, ports, strict=True)]
        try:
            async with aiohttp.ClientSession() as s:
                for e in engines:
                    await wait_until_async(functools.partial(_ready, s, e), 180,
                                           f"engine {e.name}", interval=0.5)
            yield engines
        finally:
            for p in procs.values():
                stop_engine(p)


async def _ready(s: aiohttp.ClientSession, e: Engine) -> bool:
    try:
        async with s.get(e.url + "/health") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


def _route(name: str, fast: str, slow: str, *, t_cls: float = cal.NEVER_SLOW,
           t_lp: float = cal.NEVER_ESCALATE, escalate: bool = True) -> RouteConfig:
    f, s = SETUPS[fast], SETUPS[slow]
    reasons: set[str] = {"error", "timeout"} if escalate else set()
    if t_lp > cal.NEVER_ESCALATE:
        reasons.add("low_confidence")
    tiers = TierConfig.model_validate({
        "fast": f.model, "slow": s.model, "fast_options": f.options,
        "slow_options": s.options, "threshold": t_cls, "target_slow_share": None,
        "escalate_on": reasons, "min_mean_logprob": t_lp, "fast_timeout_s": 120})
    return RouteConfig(model=name, variants=[VariantConfig(name="tiers", tiers=tiers)],
                       timeout_s=600)


def _solo(setup: str, deps: Sequence[str]) -> RouteConfig:
    """A configuration alone: the fast tier of a route, forced by the tier header, with
    escalation off (the slow tier, another deployment, is never asked)."""
    fast = SETUPS[setup]
    other = next(d for d in deps if d != fast.model)
    tiers = TierConfig(fast=fast.model, slow=other, fast_options=fast.options,
                       slow_options=RequestOptions(), threshold=cal.NEVER_SLOW,
                       target_slow_share=None, escalate_on=frozenset())
    return RouteConfig(model=f"solo-{setup}",
                       variants=[VariantConfig(name="tiers", tiers=tiers)], timeout_s=600)


async def _bench(qs: Sequence[Question], setups: list[str], pair: tuple[str, ...] | None,
                 args: argparse.Namespace) -> dict[str, Any]:
    calib, rep = _halves(qs, args.limit)
    all_models = models()
    used = {n: all_models[n] for n in dict.fromkeys(SETUPS[s].model for s in setups)}
    if len(used) < 2:  # the solo routes need a second deployment as their (unused) slow tier
        used = all_models
    async with _engines(used) as engines:
        deps = {m.name: m.deployment(e.url) for m, e in zip(used.values(), engines, strict=True)}
        cfg = RouterConfig(deployments=list(deps.values()),
                           routes=[_solo(s, list(deps)) for s in setups])
        router = Router(cfg)
        async with serve_router(router) as url, aiohttp.ClientSession() as session:
            client = Client(session, router, url, engines)
            await _warm(client, setups, qs[:1])
            return await _measure(client, router, cfg, deps, setups, pair, calib, rep,
                                  args.tolerance)


async def _warm(client: Client, setups: Sequence[str], qs: Sequence[Question]) -> None:
    """One request per configuration first: model pages and caches warm, not measured."""
    await _singles(client, setups, qs)


async def _singles(client: Client, setups: Sequence[str], qs: Sequence[Question], *,
                   logprobs: bool = False) -> dict[str, Run]:
    """Each configuration alone; those of different engines at the same time (one thread
    each, on their own cores), each run costed on its own engine only."""
    groups: dict[str, list[str]] = {}
    for s in setups:
        groups.setdefault(SETUPS[s].model, []).append(s)

    async def group(model: str, names: list[str]) -> dict[str, Run]:
        return {s: await client.run(s, f"solo-{s}", qs, force="fast", logprobs=logprobs,
                                    engines=[model]) for s in names}

    done = await asyncio.gather(*(group(m, names) for m, names in groups.items()))
    merged = {k: v for d in done for k, v in d.items()}
    return {s: merged[s] for s in setups}


async def _measure(client: Client, router: Router, cfg: RouterConfig,
                   deps: Mapping[str, DeploymentConfig], setups: list[str],
                   pair: tuple[str, ...] | None, calib: Sequence[Question],
                   rep: Sequence[Question], tolerance: float) -> dict[str, Any]:
    cal_runs = await _singles(client, setups, calib, logprobs=True)
    items = {s: [cal.Item(a.correct, a.latency_s, a.mean_logprob) for a in r.answers]
             for s, r in cal_runs.items()}
    classifier = HeuristicClassifier()
    scores = [classifier.score_sync(q.question, 1) for q in calib]
    pairs = [cal.calibrate_pair(f, s, items, scores, tolerance)
             for f in setups for s in setups if f != s]
    chosen = next(p for p in pairs if (p.fast, p.slow) == pair) if pair else \
        cal.pick_pair(pairs, items, len(calib), tolerance)
    points = {"classifier": chosen.classifier, "confidence": chosen.confidence,
              "both": chosen.both}
    tiered = [_route(f"tiers-{k}", chosen.fast, chosen.slow, t_cls=p.t_cls, t_lp=p.t_lp)
              for k, p in points.items()]
    router.apply_config(cfg.model_copy(update={"routes": [*cfg.routes, *tiered]}))
    singles = await _singles(client, setups, rep)
    runs: list[Run] = [await client.run(f"tiered ({k})", f"tiers-{k}", rep) for k in POLICIES]
    n = len(calib)
    return {
        "questions": {"calibration": len(calib), "report": len(rep)},
        "calibration": {"singles": {s: {**report.row(r, deps),
                                        "confidence_auc": cal.confidence_auc(items[s])}
                                    for s, r in cal_runs.items()},
                        "pairs": [report.pair_json(p, n, items) for p in pairs]},
        "chosen": report.pair_json(chosen, n, items),
        "report": [*(report.row(r, deps) for r in singles.values()),
                   *(report.row(r, deps, singles[chosen.slow], singles[chosen.fast])
                     for r in runs)],
        "answers": {r.label: [a.__dict__ for a in r.answers]
                    for r in [*singles.values(), *runs]},
        "calibration_answers": {r.label: [a.__dict__ for a in r.answers]
                                for r in cal_runs.values()},
    }


def _text(out: dict[str, Any]) -> str:
    c = out["chosen"]
    th = {k: (c[k]["classifier_threshold"], c[k]["min_mean_logprob"]) for k in POLICIES}
    return "\n".join([
        f"questions: {out['questions']['calibration']} calibration, "
        f"{out['questions']['report']} report",
        "", "calibration half (pairs simulated from each configuration's answers):",
        report.pairs_table(out["calibration"]["pairs"]),
        "", f"chosen pair: {c['fast']} -> {c['slow']}; thresholds (classifier score, "
        f"min mean logprob): {th}",
        "", "report half (through the router):", report.table(out["report"]),
        "", *_verdict(out["report"]),
        "confidence AUC of each configuration on the calibration half (0.5: no signal): "
        + ", ".join(f"{k} {v['confidence_auc']:.2f}" for k, v in
                    out["calibration"]["singles"].items() if v.get("confidence_auc"))])


def _verdict(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each tiered policy against the best configuration alone (RouteLLM's goal: within
    2 points of its accuracy at clearly lower cost)."""
    alone = [r for r in rows if "escalated" not in r]
    best = max(alone, key=lambda r: (r["accuracy"], -r["cpu_s"]))
    return [f"{r['config']}: {100 * (r['accuracy'] - best['accuracy']):+.1f} points at "
            f"{r['cpu_s'] / max(best['cpu_s'], 1e-9):.2f}x the CPU-seconds of the best "
            f"configuration alone ({best['config']})" for r in rows if "escalated" in r]

"""Check and fit latency profiles against published benchmark points.

A published LLM benchmark is a *closed loop*: ``c`` clients each send a request with a
fixed prompt length and a fixed output length (``ignore_eos``), wait for the whole
response, and immediately send the next one; all clients start together, as
``vllm bench serve --max-concurrency c`` and NVIDIA's genai-perf do. This module runs
exactly that loop through :class:`~tierserve.core.latency.EngineCore` on a virtual
clock (no sleeping, no I/O) and reports the mean TTFT and the mean inter-token latency
(``(e2e - ttft) / (output_tokens - 1)`` per request, the genai-perf / vLLM "TPOT"
definition).

:func:`fit` is the small search that produced the numbers in
:mod:`tierserve.core.profiles`; ``python -m tierserve.dev.calibration`` prints the
fit error of every profile, or re-fits one with ``--fit NAME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any

from tierserve.core.latency import EngineCore, LatencyProfile, SeqRequest
from tierserve.core.profiles import BenchmarkPoint, Measured


def run_closed_loop(
    profile: LatencyProfile,
    concurrency: int,
    prompt_tokens: int,
    output_tokens: int,
    requests_per_client: int = 4,
) -> Measured:
    """Run ``concurrency`` closed-loop clients on a virtual clock and average over all."""
    core = EngineCore(profile)
    now = 0.0
    sent_at: dict[str, float] = {}
    first_at: dict[str, float] = {}
    ttfts: list[float] = []
    itls: list[float] = []
    issued = 0
    total = concurrency * requests_per_client

    def send() -> None:
        nonlocal issued
        rid = f"r{issued}"
        issued += 1
        sent_at[rid] = now
        core.submit(SeqRequest(rid, prompt_tokens, output_tokens))

    for _ in range(concurrency):
        send()
    while core.has_work():
        out = core.step()
        now += out.duration_s
        for rid in out.first_token_ids:
            first_at[rid] = now
        for rid in out.finished_ids:
            ttft = first_at[rid] - sent_at[rid]
            ttfts.append(ttft)
            if output_tokens > 1:
                itls.append((now - first_at[rid]) / (output_tokens - 1))
            if issued < total:
                send()
    mean_itl = sum(itls) / len(itls) if itls else 0.0
    return Measured(
        concurrency=concurrency,
        ttft_ms=1000.0 * sum(ttfts) / len(ttfts),
        itl_ms=1000.0 * mean_itl,
        output_tok_s=total * output_tokens / now,
    )


def measure(profile: LatencyProfile, point: BenchmarkPoint) -> Measured:
    """Run the closed loop that ``point`` describes (beside busy neighbours: every step
    slowed by the profile's factor with all of them busy)."""
    m = run_closed_loop(
        profile, point.concurrency, point.prompt_tokens, point.output_tokens, point.rounds
    )
    if not point.beside_busy:
        return m
    slow = profile.neighbour_factor(1, 1)
    return dataclasses.replace(m, ttft_ms=m.ttft_ms * slow, itl_ms=m.itl_ms * slow,
                               output_tok_s=m.output_tok_s / slow)


def worst_error(profile: LatencyProfile, points: Sequence[BenchmarkPoint]) -> float:
    """Largest absolute relative error over every cited figure."""
    errs = [abs(e) for p in points for e in p.errors(measure(profile, p)).values()]
    return max(errs, default=0.0)


FIT_FIELDS = (
    "prefill_ms_per_token",
    "step_base_ms",
    "step_ms_per_seq",
    "step_ms_per_seq2",
    "kv_cache_tokens",
    "max_prefill_tokens_per_step",
)


def _score(profile: LatencyProfile, points: Sequence[BenchmarkPoint]) -> float:
    """Worst absolute log-ratio plus a little of the mean (breaks ties smoothly)."""
    errs = [
        abs(math.log1p(e)) for p in points for e in p.errors(measure(profile, p)).values()
    ]
    return max(errs) + 0.1 * sum(errs) / len(errs)


def fit(
    start: LatencyProfile,
    points: Sequence[BenchmarkPoint],
    fields: Sequence[str] = FIT_FIELDS,
    iterations: int = 400,
    seed: int = 1,
) -> LatencyProfile:
    """Seeded random local search: perturb ``fields`` multiplicatively, keep improvements.

    The objective (worst log error) is piecewise constant in the integer fields and
    noisy in the rest, which defeats gradient and coordinate methods; a few hundred
    closed-loop runs take seconds. The radius shrinks as the search stalls.
    """
    rnd = random.Random(seed)
    best, best_score = start, _score(start, points)
    radius = 0.15
    for i in range(iterations):
        changes: dict[str, Any] = {}
        for name in fields:
            value = getattr(best, name)
            factor = math.exp(rnd.uniform(-radius, radius))
            scaled = value * factor
            changes[name] = max(1, round(scaled)) if isinstance(value, int) else scaled
        cand = dataclasses.replace(best, **changes)
        score = _score(cand, points)
        if score < best_score:
            best, best_score = cand, score
        elif i % 50 == 49:
            radius = max(radius / 1.5, 0.01)
    return best


def report(profile: LatencyProfile, points: Sequence[BenchmarkPoint]) -> list[str]:
    """Human-readable lines: cited vs model at every point."""
    lines = []
    for p in points:
        m = measure(profile, p)
        errs = ", ".join(f"{k} {100 * e:+.1f}%" for k, e in p.errors(m).items())
        lines.append(
            f"{profile.name:26} c={p.concurrency:<4} in/out={p.prompt_tokens}/{p.output_tokens:<4}"
            f" model TTFT {m.ttft_ms:7.1f} ms ITL {m.itl_ms:6.2f} ms {m.output_tok_s:7.0f} tok/s"
            f" | vs cited: {errs}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    from tierserve.core.profiles import CITED, get_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fit", metavar="NAME", help="re-fit this profile and print it")
    args = parser.parse_args(argv)
    if args.fit:
        fitted = fit(get_profile(args.fit), CITED[args.fit])
        print({f: getattr(fitted, f) for f in FIT_FIELDS})
        print("\n".join(report(fitted, CITED[args.fit])))
        return 0
    for name, points in CITED.items():
        print("\n".join(report(get_profile(name), points)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Request traces: loaders for CSV/JSONL files and seeded synthetic generators.

A trace is a tuple of :class:`TraceRequest` sorted by arrival time, starting at 0.
Formats accepted:

* CSV with a header ``TIMESTAMP,ContextTokens,GeneratedTokens`` (the Azure LLM
  inference traces; TIMESTAMP is an ISO date-time or seconds);
* JSONL, one object per line with ``arrival_s`` (or ``timestamp``), ``input_tokens``
  and ``output_tokens``.

Malformed input raises :class:`TraceError` naming the file, the line and the value.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class TraceError(ValueError):
    """The trace file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


Trace = tuple[TraceRequest, ...]


def _timestamp(raw: str, where: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        # Azure traces carry 7 fractional digits; datetime accepts at most 6
        head, _, frac = raw.strip().partition(".")
        return datetime.fromisoformat(f"{head}.{frac[:6]}" if frac else head).timestamp()
    except ValueError:
        raise TraceError(f"{where}: bad timestamp {raw!r}") from None


def _tokens(raw: object, field: str, where: str, minimum: int) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise TraceError(f"{where}: {field} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise TraceError(f"{where}: {field} must be >= {minimum}, got {value}")
    return value


def _normalize(rows: Iterable[TraceRequest], source: str) -> Trace:
    reqs = sorted(rows, key=lambda r: r.arrival_s)
    if not reqs:
        raise TraceError(f"{source}: trace has no requests")
    t0 = reqs[0].arrival_s
    return tuple(TraceRequest(r.arrival_s - t0, r.prompt_tokens, r.output_tokens) for r in reqs)


def load_csv(path: Path) -> Trace:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise TraceError(
                f"{path}: CSV header must contain {sorted(need)}, got {reader.fieldnames}"
            )
        rows = []
        for i, row in enumerate(reader, start=2):
            where = f"{path}:{i}"
            rows.append(
                TraceRequest(
                    _timestamp(row["TIMESTAMP"] or "", where),
                    _tokens(row["ContextTokens"], "ContextTokens", where, 1),
                    _tokens(row["GeneratedTokens"], "GeneratedTokens", where, 1),
                )
            )
    return _normalize(rows, str(path))


def load_jsonl(path: Path) -> Trace:
    rows = []
    with path.open() as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise TraceError(f"{where}: expected an object, got {line.strip()[:60]!r}")
            raw_t = obj.get("arrival_s", obj.get("timestamp"))
            if raw_t is None:
                raise TraceError(f"{where}: missing 'arrival_s' (or 'timestamp')")
            for key in ("input_tokens", "output_tokens"):
                if key not in obj:
                    raise TraceError(f"{where}: missing {key!r}")
            rows.append(
                TraceRequest(
                    _timestamp(str(raw_t), where),
                    _tokens(obj["input_tokens"], "input_tokens", where, 1),
                    _tokens(obj["output_tokens"], "output_tokens", where, 1),
                )
            )
    return _normalize(rows, str(path))


def load_trace(path: str | Path) -> Trace:
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: no such trace file")
    if p.suffix.lower() == ".csv":
        return load_csv(p)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return load_jsonl(p)
    raise TraceError(f"{p}: unknown trace format {p.suffix!r} (use .csv or .jsonl)")


def scale_rate(trace: Sequence[TraceRequest], factor: float) -> Trace:
    """Compress inter-arrival times by ``factor`` (2.0 = twice the request rate)."""
    if factor <= 0 or not math.isfinite(factor):
        raise ValueError(f"rate scale must be a positive number, got {factor}")
    return tuple(
        TraceRequest(r.arrival_s / factor, r.prompt_tokens, r.output_tokens) for r in trace
    )


def replicate_rate(trace: Sequence[TraceRequest], factor: float, seed: int = 0) -> Trace:
    """Multiply the request rate by ``factor`` and keep the trace's duration.

    :func:`scale_rate` compresses time, so a burst that lasted four minutes lasts one at
    4x: the load moves 4x faster against the same cold start. This keeps the clock: each
    request is there ``floor(factor)`` times, plus once more with probability of the
    fraction, every copy but the original placed uniformly in the gap to the next arrival
    (independent users with the same request shape, the same load curve over the hour).
    Seeded, so runs repeat."""
    if factor <= 0 or not math.isfinite(factor):
        raise ValueError(f"rate scale must be a positive number, got {factor}")
    rng = random.Random(seed)
    out: list[TraceRequest] = []
    for i, r in enumerate(trace):
        gap = trace[i + 1].arrival_s - r.arrival_s if i + 1 < len(trace) else 0.0
        copies = int(factor) + (1 if rng.random() < factor - int(factor) else 0)
        for k in range(copies):
            at = r.arrival_s if k == 0 else r.arrival_s + rng.uniform(0.0, gap)
            out.append(TraceRequest(at, r.prompt_tokens, r.output_tokens))
    out.sort(key=lambda r: r.arrival_s)
    return tuple(out)


def _shape(rng: random.Random, prompt_mean: int, output_mean: int) -> tuple[int, int]:
    # exponential-ish lengths, like chat traffic: many short, a long tail
    prompt = max(1, min(8000, int(rng.expovariate(1 / prompt_mean))))
    output = max(1, min(1000, int(rng.expovariate(1 / output_mean))))
    return prompt, output


def thinning(
    rate_at: Callable[[float], float], peak: float, duration_s: float, rng: random.Random
) -> Iterator[float]:
    """Non-homogeneous Poisson arrival times by thinning (Lewis & Shedler); ``rate_at``
    must stay at or below ``peak``. Lazy: what the caller draws from ``rng`` between
    arrivals is interleaved with the arrivals' own draws."""
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return
        if rng.random() * peak <= rate_at(t):
            yield t


def _thinned(
    rate_at: Callable[[float], float],
    peak: float,
    duration_s: float,
    seed: int,
    prompt_mean: int,
    output_mean: int,
) -> Trace:
    rng = random.Random(seed)
    return tuple(TraceRequest(t, *_shape(rng, prompt_mean, output_mean))
                 for t in thinning(rate_at, peak, duration_s, rng))


def poisson_bursts(
    *,
    rate: float,
    duration_s: float,
    bursts: Sequence[tuple[float, float, float]] = (),
    seed: int = 0,
    prompt_mean: int = 1000,
    output_mean: int = 200,
) -> Trace:
    """Poisson at ``rate`` req/s, multiplied by ``factor`` during each (start, length, factor)."""

    def rate_at(t: float) -> float:
        f = max([fac for s, n, fac in bursts if s <= t < s + n], default=1.0)
        return rate * f

    peak = rate * max([f for _, _, f in bursts], default=1.0)
    return _thinned(rate_at, peak, duration_s, seed, prompt_mean, output_mean)


def diurnal(
    *,
    mean_rate: float,
    duration_s: float,
    period_s: float = 86_400.0,
    amplitude: float = 0.6,
    seed: int = 0,
    prompt_mean: int = 1000,
    output_mean: int = 200,
) -> Trace:
    """Poisson whose rate follows ``mean_rate * (1 + amplitude * sin(2 pi t / period))``."""
    if not 0 <= amplitude < 1:
        raise ValueError(f"amplitude must be in [0, 1), got {amplitude}")

    def rate_at(t: float) -> float:
        return mean_rate * (1 + amplitude * math.sin(2 * math.pi * t / period_s))

    peak = mean_rate * (1 + amplitude)
    return _thinned(rate_at, peak, duration_s, seed, prompt_mean, output_mean)

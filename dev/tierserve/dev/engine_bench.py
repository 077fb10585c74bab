"""Benchmark the llama.cpp engine with the real models on this machine, per runtime.

``python -m tierserve.dev.engine_bench [--models smollm2-135m gemma3-270m]
[--runtimes standalone rayServe triton] [--runs 5] [--max-tokens 32] [--logits-all]``

For each model and runtime it starts the engine (the standalone aiohttp server, or a
deployment on the local runtimes of ``tierserve operator --target local``), warms it up
with one request, then sends ``--runs`` streamed requests one after another (the same
short chat prompt, ``max_tokens`` tokens with ``ignore_eos``, temperature 0) and prints
the medians seen by the client: TTFT, TPOT (``(last - first) / (tokens - 1)``) and
output tokens/s (``tokens / end-to-end``). ``--logits-all`` also measures what loading
with llama-cpp-python's ``logits_all=True`` costs (memory and ms/token), against the
default this engine uses (log-probabilities from the last position's logits).
Figures, not assertions: the machine is shared, so treat them as rough.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp

from tierserve.core.local import RuntimeName
from tierserve.dev.real_models import ENGINES
from tierserve.dev.waiting import wait_until_async
from tierserve.engine.engines import engine_args, make_backend
from tierserve.engine.local import LocalRuntimes, LocalSpec, free_port
from tierserve.engine.server import ServerConfig, start

QUESTION = "Describe the city of Paris."
QUESTIONS = ("Describe the city of Paris.", "Tell me about the sea.",
             "Explain how a bicycle works.", "Write about autumn leaves.",
             "Describe a busy market.", "Tell me about the moon.")
RUNTIMES = ("standalone", "rayServe", "triton")


@dataclass(frozen=True)
class Target:
    """Where to send a streamed request (its body per question) and how to read the
    text of its events."""

    url: str
    body: Callable[[str], dict[str, Any]]
    text_of: Callable[[dict[str, Any]], str]


def question(i: int) -> str:
    """A different question each run, so no run reuses the previous one's KV cache."""
    return f"{QUESTIONS[i % len(QUESTIONS)]} Answer number {i}."


@dataclass(frozen=True)
class Run:
    ttft_s: float
    tpot_s: float
    tokens_per_s: float
    tokens: int


def _openai_target(base: str, model: str, max_tokens: int) -> Target:
    def body(q: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": q}],
                "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True}

    return Target(f"{base}/v1/chat/completions", body,
                  lambda e: "".join((c.get("delta") or {}).get("content") or ""
                                    for c in e.get("choices", [])))


def _triton_target(base: str, model: str, max_tokens: int) -> Target:
    def body(q: str) -> dict[str, Any]:
        messages = json.dumps([{"role": "user", "content": q}])
        return {"text_input": "", "max_tokens": max_tokens, "stream": True,
                "parameters": {"messages": messages, "temperature": 0, "ignore_eos": True}}

    return Target(f"{base}/v2/models/{model}/generate_stream", body,
                  lambda e: str(e.get("text_output", "")))


async def measure(session: aiohttp.ClientSession, target: Target, i: int) -> Run:
    """One streamed request: when each event with text arrived."""
    start = time.monotonic()
    stamps: list[float] = []
    async with session.post(target.url, json=target.body(question(i))) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{target.url}: {resp.status} {await resp.text()}")
        async for line in resp.content:
            data = line.startswith(b"data: ") and not line.startswith(b"data: [DONE]")
            if data and target.text_of(json.loads(line[6:])):
                stamps.append(time.monotonic())
    end = time.monotonic()
    n = len(stamps)
    tpot = (stamps[-1] - stamps[0]) / (n - 1) if n > 1 else 0.0
    return Run(stamps[0] - start if stamps else end - start, tpot, n / (end - start), n)


@asynccontextmanager
async def standalone(name: str, args: Mapping[str, Any],
                     max_tokens: int) -> AsyncIterator[Target]:
    port = free_port()
    runner = await start(ServerConfig(name, lambda: make_backend(engine_args(args))),
                         "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        async with aiohttp.ClientSession() as s, s.get(f"{base}/health") as r:
            return r.status == 200

    try:
        await wait_until_async(healthy, 120, f"{name} loaded", interval=0.1)
        yield _openai_target(base, name, max_tokens)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def local(runtime: str, name: str, args: Mapping[str, Any],
                max_tokens: int) -> AsyncIterator[Target]:
    with tempfile.TemporaryDirectory(prefix="tierserve-bench-") as tmp:
        runtimes = LocalRuntimes(Path(tmp), ray_http_port=free_port(), ray_num_cpus=2)
        key = f"bench/{name}"
        spec = LocalSpec(key, cast(RuntimeName, runtime), "", name, engine="llamacpp",
                         model_uri=str(args["model"]), threads=args.get("threads"),
                         chat_template=args.get("chat_template"),
                         stop=tuple(args.get("stop", ())))
        try:
            await runtimes.apply(spec)

            async def ready() -> bool:
                status = await runtimes.status(key)
                return status is not None and status.ready

            await wait_until_async(ready, 300, f"{name} on {runtime}", interval=0.5)
            status = await runtimes.status(key)
            assert status is not None
            if runtime == "triton":
                yield _triton_target(status.endpoint, status.model_name, max_tokens)
            else:
                yield _openai_target(status.endpoint, name, max_tokens)
        finally:
            await runtimes.close()


def _median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in runs))


async def bench(model: str, runtime: str, runs: int, max_tokens: int) -> str:
    args = {**ENGINES[model], "stop": ()}  # ignore_eos runs on; stop strings would not
    ctx = (standalone(model, args, max_tokens) if runtime == "standalone"
           else local(runtime, model, args, max_tokens))
    async with ctx as target, aiohttp.ClientSession() as session:
        await measure(session, target, 0)  # warm-up: first decode, the template's prefix
        got = [await measure(session, target, i + 1) for i in range(runs)]
    return (f"| {model} | {runtime} | {_median(got, 'tokens_per_s'):.1f} | "
            f"{_median(got, 'ttft_s') * 1000:.0f} | {_median(got, 'tpot_s') * 1000:.1f} | "
            f"{int(_median(got, 'tokens'))} |")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _one_logits_all(model: str, logits_all: bool, tokens: int) -> tuple[float, float]:
    """In a fresh process: (median ms/token with log-probabilities, resident MiB added
    by loading the model and running)."""
    from tierserve.engine.llamacpp import LlamaCppBackend, LlamaCppSettings
    from tierserve.engine.openai_api import parse_request

    fields = {k: v for k, v in ENGINES[model].items() if k not in ("engine", "stop")}
    before = _rss_mib()
    backend = LlamaCppBackend(LlamaCppSettings(**fields, logits_all=logits_all))
    backend.load()

    async def run(i: int) -> float:
        body = {"model": "m", "prompt": question(i), "max_tokens": tokens, "temperature": 0,
                "ignore_eos": True, "logprobs": 1}
        start, n = time.monotonic(), 0
        async for chunk in backend.generate(backend.prepare(parse_request("completion", body,
                                                                          "m"))):
            n += len(chunk.tokens)
        return (time.monotonic() - start) / n

    per_token = statistics.median(asyncio.run(run(i)) for i in range(4))
    return per_token * 1000, _rss_mib() - before


def logits_all_cost(model: str, tokens: int) -> list[str]:
    """Each configuration in its own process, so memory does not carry over."""
    import multiprocessing

    rows = []
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for logits_all in (False, True):
            ms, mib = pool.apply(_one_logits_all, (model, logits_all, tokens))
            rows.append(f"| {model} | {logits_all} | {ms:.1f} | {mib:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--models", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--logits-all", action="store_true", help="also measure logits_all=True")
    args = p.parse_args(argv)
    print("| model | runtime | tokens/s | TTFT ms | TPOT ms | tokens |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        for runtime in args.runtimes:
            print(asyncio.run(bench(model, runtime, args.runs, args.max_tokens)), flush=True)
    if args.logits_all:
        print("\n| model | logits_all | ms/token with logprobs | resident MiB after load+run |")
        print("|---|---|---|---|")
        for model in args.models:
            for row in logits_all_cost(model, args.max_tokens):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

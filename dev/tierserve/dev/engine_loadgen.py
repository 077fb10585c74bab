"""A small closed-loop load generator for OpenAI-compatible streaming endpoints.

Used to measure the live engine on this machine (``docs/engine.md``): ``c`` clients
stream ``/v1/completions`` back to back for a fixed time; the result is the output
tokens/s delivered and the mean TTFT / inter-token latency seen by the clients.
Token-count hints (``tierserve.prompt_tokens``) make the prompt length exact without
sending a long prompt.

    python -m tierserve.dev.engine_loadgen --url http://127.0.0.1:8000 --model M -c 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    output_tok_s: float
    mean_ttft_ms: float
    mean_itl_ms: float


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, object],
    stop_at: float,
    samples: list[tuple[float, float, int]],
) -> None:
    while time.monotonic() < stop_at:
        start = time.monotonic()
        first: float | None = None
        tokens = 0
        async with session.post(url, json=body) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and first is None:
                    first = time.monotonic()
                if chunk.get("usage"):  # a chunk may carry several tokens: count usage
                    tokens = chunk["usage"]["completion_tokens"]
        end = time.monotonic()
        if first is not None:
            samples.append((first - start, end - first, tokens))


async def run_load(
    base_url: str,
    model: str,
    concurrency: int,
    duration_s: float = 10.0,
    prompt_tokens: int = 200,
    max_tokens: int = 200,
) -> LoadResult:
    """Run ``concurrency`` streaming clients for ``duration_s`` (plus the last requests)."""
    body: dict[str, object] = {
        "model": model,
        "prompt": "x",
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tierserve": {"prompt_tokens": prompt_tokens},
    }
    samples: list[tuple[float, float, int]] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        url = f"{base_url.rstrip('/')}/v1/completions"
        await asyncio.gather(
            *[_client(session, url, body, start + duration_s, samples) for _ in range(concurrency)]
        )
        elapsed = time.monotonic() - start
    tokens = sum(n for _, _, n in samples)
    itls = [rest / (n - 1) for _, rest, n in samples if n > 1]
    return LoadResult(
        concurrency=concurrency,
        requests=len(samples),
        output_tok_s=tokens / elapsed,
        mean_ttft_ms=1000 * sum(t for t, _, _ in samples) / max(len(samples), 1),
        mean_itl_ms=1000 * sum(itls) / max(len(itls), 1),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="closed-loop streaming load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("-c", "--concurrency", type=int, action="append", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args(argv)
    for c in args.concurrency:
        r = asyncio.run(
            run_load(args.url, args.model, c, args.duration, args.prompt_tokens, args.max_tokens)
        )
        print(
            f"c={c:<4} requests={r.requests:<5} {r.output_tok_s:8.0f} tok/s  "
            f"TTFT {r.mean_ttft_ms:7.1f} ms  ITL {r.mean_itl_ms:6.2f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

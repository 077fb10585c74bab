"""A lean HTTP/1.1 load generator for the router benchmark (run as its own process).

Raw asyncio protocols over keep-alive connections (no HTTP client library) keep the
generator's own CPU cost per request to a few tens of microseconds, which matters on a
two-core machine shared with the router and the backend. Two modes:

* ``nonstream``: open loop at a fixed rate; latency from write to the last body byte.
* ``stream``: N closed-loop workers; time to first SSE event and gaps between events.

Prints one JSON object: percentiles in milliseconds, achieved rate and error rate.
``python -m modelplane.routing.loadgen --url http://127.0.0.1:8080 --mode nonstream
--rate 300 --duration 10``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from modelplane.routing.abtest import percentile


@dataclass
class Sample:
    ok: bool
    latency: float = 0.0
    ttft: float = 0.0
    gaps: list[float] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Sample] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Sample(False))

    def send(self, data: bytes) -> asyncio.Future[Sample]:
        assert self.transport is not None
        self._buf = b""
        self._start = time.perf_counter()
        self._first = 0.0
        self._last = 0.0
        self._gaps: list[float] = []
        self._header_end = -1
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if b"data:" in data:
            if not self._first:
                self._first = now
            else:
                self._gaps.append(now - self._last)
            self._last = now
        self._buf += data
        if self._header_end < 0:
            self._header_end = self._buf.find(b"\r\n\r\n")
            if self._header_end < 0:
                return
        if self._complete():
            status_ok = self._buf.startswith(b"HTTP/1.1 200")
            body = self._buf[self._header_end:]
            streamed_ok = (b"text/event-stream" not in self._buf[:self._header_end]
                           or (b"[DONE]" in body and b'"error"' not in body))
            sample = Sample(status_ok and streamed_ok, now - self._start,
                            (self._first or now) - self._start, self._gaps)
            assert self._waiter is not None
            if not self._waiter.done():
                self._waiter.set_result(sample)

    def _complete(self) -> bool:
        head = self._buf[:self._header_end].lower()
        body_len = len(self._buf) - self._header_end - 4
        i = head.find(b"content-length:")
        if i >= 0:
            n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            return body_len >= n
        return self._buf.endswith(b"0\r\n\r\n")  # chunked: the terminating chunk


def _request(url: str, body: bytes, api_key: str = "sk-bench") -> bytes:
    parts = urlsplit(url)
    return (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Pool:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._idle: list[_Conn] = []

    async def call(self, data: bytes, limit_s: float) -> Sample:
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            try:
                _t, conn = await asyncio.get_running_loop().create_connection(
                    _Conn, self._host, self._port)
            except OSError:
                return Sample(False)
        try:
            sample = await asyncio.wait_for(conn.send(data), limit_s)
        except TimeoutError:
            sample = Sample(False)
            assert conn.transport is not None
            conn.transport.close()
        if sample.ok and not conn.closed:
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return sample


async def run_nonstream(url: str, body: bytes, rate: float, duration: float,
                        api_key: str = "sk-bench") -> list[Sample]:
    parts = urlsplit(url)
    pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    data = _request(url, body, api_key)
    tasks, start = [], time.perf_counter()
    total = int(rate * duration)
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pool.call(data, 30.0)))
    return list(await asyncio.gather(*tasks))


async def run_stream(url: str, body: bytes, concurrency: int, duration: float,
                     api_key: str = "sk-bench") -> list[Sample]:
    parts = urlsplit(url)
    data = _request(url, body, api_key)
    end = time.perf_counter() + duration
    out: list[Sample] = []

    async def worker() -> None:
        pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
        while time.perf_counter() < end:
            out.append(await pool.call(data, 60.0))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def summarize(samples: list[Sample], elapsed: float) -> dict[str, float | int | None]:
    ok = [s for s in samples if s.ok]
    lat = [s.latency * 1000 for s in ok]
    ttft = [s.ttft * 1000 for s in ok]
    gaps = [g * 1000 for s in ok for g in s.gaps]
    return {
        "requests": len(samples), "errors": len(samples) - len(ok),
        "error_rate": (len(samples) - len(ok)) / len(samples) if samples else 0.0,
        "achieved_rps": len(ok) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
        "gap_p50_ms": percentile(gaps, 50), "gap_p99_ms": percentile(gaps, 99),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--model", default="bench")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--api-key", default="sk-bench")
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    # The generator keeps every task and sample until the end; a full collection over
    # them would stall it and show up as latency spikes of whichever target is measured.
    gc.disable()
    request: dict[str, object] = {"model": a.model, "stream": a.mode == "stream",
                                  "messages": [{"role": "user", "content": "Say something."}]}
    if a.max_tokens > 0:
        request["max_tokens"] = a.max_tokens
    body = json.dumps(request).encode()
    url = a.url.rstrip("/") + "/v1/chat/completions"
    t0 = time.perf_counter()
    if a.mode == "nonstream":
        samples = asyncio.run(run_nonstream(url, body, a.rate, a.duration, a.api_key))
    else:
        samples = asyncio.run(run_stream(url, body, a.concurrency, a.duration, a.api_key))
    print(json.dumps(summarize(samples, time.perf_counter() - t0)))


if __name__ == "__main__":
    main()

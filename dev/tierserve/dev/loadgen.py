"""A lean HTTP/1.1 load generator for the router benchmark (run as its own process).

Raw asyncio protocols over keep-alive connections (no HTTP client library) keep the
generator's own CPU cost per request to a few tens of microseconds, which matters on a
two-core machine shared with the router and the backend. Two modes:

* ``nonstream``: open loop at a fixed rate. Request ``i`` is due at ``start + i / rate``
  whatever happened to earlier requests (a slow target gets more requests in flight, not
  fewer); each is written when due, on a fresh connection if none is idle. Latency is
  measured from the write to the last body byte with ``time.perf_counter_ns``; how late
  each write was against its due time is reported as ``sched_lag_*`` so a generator that
  could not keep its schedule shows it.
* ``stream``: N closed-loop workers; time to first SSE event and gaps between events.

Both modes first run ``--warmup`` seconds of the same load whose samples are dropped
(connections, caches and the target's code paths warm), then measure ``--duration``
seconds without a pause in between.

Prints one JSON object: percentiles in milliseconds, achieved rate and error rate.
``python -m tierserve.dev.loadgen --url http://127.0.0.1:8080 --mode nonstream
--rate 300 --duration 20 --warmup 3``
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

from tierserve.routing.abtest import percentile

_NS = 1_000_000_000
# uvloop's timers have millisecond resolution: a request due within this much of now is
# written now instead of sleeping for a timer that would round to zero and spin.
_EARLY_NS = 250_000


@dataclass
class Sample:
    ok: bool
    start_ns: int = 0  # when the request was written
    latency_ns: int = 0  # write -> last byte
    ttft_ns: int = 0  # write -> first SSE event
    gaps_ns: list[int] = field(default_factory=list)
    lag_ns: int = 0  # write time minus due time (open loop only)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._start = 0
        self._waiter: asyncio.Future[Sample] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Sample(False, self._start))

    def expire(self) -> None:
        """The request's time limit passed: it failed, and the connection closes."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Sample(False, self._start))
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> asyncio.Future[Sample]:
        assert self.transport is not None
        self._chunks: list[bytes] = []
        self._head = b""
        self._first = 0
        self._last = 0
        self._gaps: list[int] = []
        self._header_end = -1
        self._body_len = 0
        self._length: int | None = None
        self._chunked = False
        self._waiter = asyncio.get_running_loop().create_future()
        self._start = time.perf_counter_ns()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if b"data:" in data:
            if not self._first:
                self._first = now
            else:
                self._gaps.append(now - self._last)
            self._last = now
        if self._header_end < 0:
            self._head += data
            self._header_end = self._head.find(b"\r\n\r\n")
            if self._header_end < 0:
                return
            data = self._head[self._header_end + 4:]
            self._head = self._head[:self._header_end]
            self._parse_head()
        self._body_len += len(data)
        self._chunks.append(data)
        if self._complete(data):
            status_ok = self._head.startswith(b"HTTP/1.1 200")
            streamed = b"text/event-stream" in self._head
            body = b"".join(self._chunks) if streamed else b""
            streamed_ok = not streamed or (b"[DONE]" in body and b'"error"' not in body)
            sample = Sample(status_ok and streamed_ok, self._start, now - self._start,
                            (self._first or now) - self._start, self._gaps)
            assert self._waiter is not None
            if not self._waiter.done():
                self._waiter.set_result(sample)

    def _parse_head(self) -> None:
        head = self._head.lower()
        i = head.find(b"content-length:")
        if i >= 0:
            end = head.find(b"\r\n", i)
            self._length = int(head[i + 15:end if end > 0 else None])
        self._chunked = self._length is None

    def _complete(self, last: bytes) -> bool:
        if self._length is not None:
            return self._body_len >= self._length
        if last.endswith(b"0\r\n\r\n"):  # chunked: the terminating chunk
            return True
        return len(last) < 5 and b"".join(self._chunks)[-5:] == b"0\r\n\r\n"


def _request(url: str, body: bytes, api_key: str = "sk-bench") -> bytes:
    parts = urlsplit(url)
    return (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Pool:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._idle: list[_Conn] = []

    async def connect(self, n: int) -> None:
        """Open ``n`` idle connections ahead of time."""
        for _ in range(n):
            conn = await self._open()
            if conn is not None:
                self._idle.append(conn)

    async def _open(self) -> _Conn | None:
        try:
            _t, conn = await asyncio.get_running_loop().create_connection(
                _Conn, self._host, self._port)
        except OSError:
            return None
        return conn

    async def call(self, data: bytes, limit_s: float) -> Sample:
        conn = self._idle.pop() if self._idle else None
        while conn is not None and conn.closed:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = await self._open()
            if conn is None:
                return Sample(False, time.perf_counter_ns())
        # One timer closing the connection instead of ``wait_for`` (cheaper per request).
        waiter = conn.send(data)
        timer = asyncio.get_running_loop().call_later(limit_s, conn.expire)
        sample = await waiter
        timer.cancel()
        if sample.ok and not conn.closed:
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return sample


async def run_nonstream(url: str, body: bytes, rate: float, duration: float,
                        api_key: str = "sk-bench", warmup: float = 0.0,
                        limit_s: float = 30.0) -> tuple[list[Sample], float]:
    """Open loop at ``rate``: the measured samples and the measured window in seconds."""
    parts = urlsplit(url)
    pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    await pool.connect(max(1, min(64, int(rate / 100) + 2)))
    data = _request(url, body, api_key)
    interval_ns = _NS / rate
    warm = int(rate * warmup)
    total = warm + int(rate * duration)
    tasks: list[asyncio.Task[Sample]] = []

    async def one(due_ns: int) -> Sample:
        sample = await pool.call(data, limit_s)
        sample.lag_ns = sample.start_ns - due_ns
        return sample

    start = time.perf_counter_ns()
    i = 0
    while i < total:
        now = time.perf_counter_ns()
        while i < total and start + int(i * interval_ns) <= now + _EARLY_NS:
            tasks.append(asyncio.create_task(one(start + int(i * interval_ns))))
            i += 1
        if i < total:
            await asyncio.sleep((start + int(i * interval_ns) - now) / _NS)
    samples = list(await asyncio.gather(*tasks))
    measured = samples[warm:]
    window = _window(measured, start + int(warm * interval_ns))
    return measured, window


async def run_stream(url: str, body: bytes, concurrency: int, duration: float,
                     api_key: str = "sk-bench", warmup: float = 0.0,
                     limit_s: float = 60.0) -> tuple[list[Sample], float]:
    """N closed-loop streams; samples of requests started after the warm-up."""
    parts = urlsplit(url)
    data = _request(url, body, api_key)
    begin = time.perf_counter_ns()
    measure_from = begin + int(warmup * _NS)
    end = measure_from + int(duration * _NS)
    out: list[Sample] = []

    async def worker(i: int) -> None:
        # Starts spread over the first second of the warm-up: N clients that all begin
        # at once stay in lockstep (every chunk of every stream in one burst per
        # inter-token gap), a synchronisation of the generator, not of real traffic.
        await asyncio.sleep(i * spread / concurrency)
        pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
        while time.perf_counter_ns() < end:
            sample = await pool.call(data, limit_s)
            if sample.start_ns >= measure_from:
                out.append(sample)

    spread = min(1.0, warmup)
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    # Requests in flight when the warm-up ended are not counted: the window starts at
    # the first counted one.
    return out, _window(out, min((s.start_ns for s in out), default=measure_from))


def _window(samples: list[Sample], start_ns: int) -> float:
    """Seconds from the start of measurement to the last completion."""
    ends = [s.start_ns + s.latency_ns for s in samples if s.ok]
    return (max(ends) - start_ns) / _NS if ends else 0.0


def summarize(samples: list[Sample], elapsed: float) -> dict[str, float | int | None]:
    ok = [s for s in samples if s.ok]
    ms = 1e-6
    lat = [s.latency_ns * ms for s in ok]
    ttft = [s.ttft_ns * ms for s in ok]
    gaps = [g * ms for s in ok for g in s.gaps_ns]
    lag = [s.lag_ns * ms for s in samples]
    return {
        "requests": len(samples), "errors": len(samples) - len(ok),
        "error_rate": (len(samples) - len(ok)) / len(samples) if samples else 0.0,
        "achieved_rps": len(ok) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
        "p999_ms": percentile(lat, 99.9), "max_ms": max(lat) if lat else None,
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
        "gap_p50_ms": percentile(gaps, 50), "gap_p99_ms": percentile(gaps, 99),
        "sched_lag_p50_ms": percentile(lag, 50), "sched_lag_p99_ms": percentile(lag, 99),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds first")
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
    if a.mode == "nonstream":
        samples, window = asyncio.run(run_nonstream(url, body, a.rate, a.duration, a.api_key,
                                                    a.warmup))
    else:
        samples, window = asyncio.run(run_stream(url, body, a.concurrency, a.duration,
                                                 a.api_key, a.warmup))
    print(json.dumps(summarize(samples, window)))


if __name__ == "__main__":
    main()

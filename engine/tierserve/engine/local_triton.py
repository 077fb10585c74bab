"""The local runner for ``runtime: triton``: one ``tritonserver`` process per deployment.

Each deployment gets its own HTTP / GRPC / metrics ports (kept across updates); replicas
are Triton model instances (each its own engine: a llama.cpp instance loads the model
once, with its threads capped so all instances fit on this machine's cores), so a change
of spec restarts the server. ``status`` restarts
a server whose process died and says so in the status message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.engine.local_runner import RunnerSettings, app_name, engine_args_for
from tierserve.engine.triton import TritonServer, TritonSpec


@dataclass
class _Served:
    spec: LocalSpec
    server: TritonServer
    restarts: int = 0
    message: str = ""


class TritonRunner:
    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self._served: dict[str, _Served] = {}

    def server(self, key: str) -> TritonServer | None:
        """The server process of ``key`` (None when it runs none)."""
        served = self._served.get(key)
        return None if served is None else served.server

    async def apply(self, spec: LocalSpec) -> None:
        old = self._served.get(spec.key)
        if old is not None and old.spec == spec:
            return
        if old is not None:
            t = old.server.spec
            ports = (t.http_port, t.grpc_port, t.metrics_port)
            await asyncio.to_thread(old.server.stop)
        else:
            port = self.settings.port_allocator
            ports = (port(), port(), port())
        server = TritonServer(TritonSpec(
            profile=spec.profile, served_name=spec.served_name,
            workdir=self.settings.workdir / "triton" / app_name(spec.key),
            http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
            cold_start_s=spec.cold_start_s, instances=spec.replicas,
            engine=engine_args_for(spec)))
        self._served[spec.key] = _Served(spec, server, restarts=old.restarts if old else 0)
        await asyncio.to_thread(server.start)

    async def status(self, key: str) -> LocalStatus:
        served = self._served[key]
        server = served.server
        if not server.alive():
            served.restarts += 1
            served.message = f"tritonserver (pid {server.pid}) died; restarted"
            await asyncio.to_thread(server.start)
        ready = await server.ready()
        if ready:
            served.message = ""
        t = server.spec
        return LocalStatus(
            key=key, runtime="triton", endpoint=t.http_url, ready=ready,
            replicas=t.instances if ready else 0, model_name=t.model_name,
            metrics_url=t.metrics_url, grpc_url=t.grpc_url, restarts=served.restarts,
            message=served.message)

    async def delete(self, key: str) -> None:
        served = self._served.pop(key, None)
        if served is not None:
            await asyncio.to_thread(served.server.stop)

    async def close(self) -> None:
        """Each server stops with its deployment's ``delete``; nothing shared to stop."""

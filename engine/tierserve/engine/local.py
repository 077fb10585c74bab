"""Local runtimes for ``tierserve operator --target local``.

:class:`LocalRuntimes` realizes a deployment on this machine instead of as Kubernetes
children: a Ray Serve application on one shared local Ray instance, or one Triton
server process per deployment. The operator calls:

* ``await apply(spec)``: start, or update in place (idempotent; returns at once, the
  runtime comes up in the background);
* ``await status(key)``: endpoint, readiness and running replicas; it also restarts a
  Triton server whose process died (call it periodically, e.g. from a timer);
* ``await delete(key)``: stop what ``apply`` started; ``await close()``: stop all.

Ray Serve applications share the Serve HTTP proxy on ``ray_http_port``; each one is
routed under ``/<app>`` where ``<app>`` is the key with ``/`` turned into ``--``, so
its OpenAI base URL is ``{endpoint}/v1``. Replicas are the ``SimEngine`` replica count.
A Triton deployment gets its own HTTP / GRPC / metrics ports; replicas are Triton model
instances (a change restarts the server). Its endpoint is Triton's HTTP URL and
``model_name`` is the Triton model to call ``generate`` / ``generate_stream`` on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.core.profiles import get_profile
from tierserve.engine.triton import TritonServer, TritonSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Entry:
    spec: LocalSpec
    triton: TritonServer | None = None
    deploy: asyncio.Task[Any] | None = None
    restarts: int = 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def app_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "--", key).strip("-") or "default"


class LocalRuntimes:
    """Owns the local runtimes of all deployments. Use from one event loop."""

    def __init__(
        self,
        workdir: Path,
        ray_http_port: int = 8000,
        ray_num_cpus: int | None = None,
        port_allocator: Callable[[], int] = free_port,
    ) -> None:
        self.workdir = workdir
        self.ray_http_port = ray_http_port
        self.ray_num_cpus = ray_num_cpus
        self._ports = port_allocator
        self._entries: dict[str, _Entry] = {}
        self._ray_started = False  # Serve is up (set once _start_ray returned)
        self._ray_owned = False  # this object called ray.init, so close() shuts Ray down
        self._ray_lock = asyncio.Lock()

    def keys(self) -> list[str]:
        return sorted(self._entries)

    async def apply(self, spec: LocalSpec) -> LocalStatus:
        """Start or update the runtime for ``spec.key``; returns the current status."""
        get_profile(spec.profile)  # reject unknown profiles before starting anything
        if spec.replicas < 1:
            raise ValueError("replicas must be >= 1 (delete the deployment to stop it)")
        entry = self._entries.get(spec.key)
        if entry is not None and entry.spec.runtime != spec.runtime:
            await self.delete(spec.key)
            entry = None
        if entry is None:
            entry = self._entries[spec.key] = _Entry(spec)
        elif entry.spec == spec and (entry.triton is not None or entry.deploy is not None):
            return await self._status(entry)
        entry.spec = spec
        if spec.runtime == "triton":
            await self._apply_triton(entry)
        else:
            await self._apply_ray(entry)
        return await self._status(entry)

    async def _apply_triton(self, entry: _Entry) -> None:
        spec = entry.spec
        old = entry.triton
        if old is not None:
            ports = (old.spec.http_port, old.spec.grpc_port, old.spec.metrics_port)
            await asyncio.to_thread(old.stop)
        else:
            ports = (self._ports(), self._ports(), self._ports())
        tspec = TritonSpec(
            profile=spec.profile,
            served_name=spec.served_name,
            workdir=self.workdir / "triton" / app_name(spec.key),
            http_port=ports[0],
            grpc_port=ports[1],
            metrics_port=ports[2],
            cold_start_s=spec.cold_start_s,
            instances=spec.replicas,
        )
        entry.triton = TritonServer(tspec)
        await asyncio.to_thread(entry.triton.start)

    async def _ensure_ray(self) -> None:
        async with self._ray_lock:
            if self._ray_started:
                return
            await asyncio.to_thread(self._start_ray)
            self._ray_started = True

    def _start_ray(self) -> None:
        import ray
        from ray import serve

        if not ray.is_initialized():
            ray.init(num_cpus=self.ray_num_cpus, include_dashboard=False, log_to_driver=False)
            # Recorded before serve.start: a Ray this started must be shut down by close()
            # even when Serve then fails to start, or it stays connected in this process
            # (and a dead GCS later ends the whole process).
            self._ray_owned = True
        serve.start(http_options={"host": "127.0.0.1", "port": self.ray_http_port})

    async def _apply_ray(self, entry: _Entry) -> None:
        from ray import serve

        from tierserve.engine.serve_app import build_app

        await self._ensure_ray()
        spec = entry.spec
        app = build_app(
            {
                "profile": spec.profile,
                "served_name": spec.served_name,
                "num_replicas": spec.replicas,
                "cold_start_s": spec.cold_start_s,
            }
        )
        name = app_name(spec.key)
        # serve.run blocks until the application is running: keep it off the loop.
        entry.deploy = asyncio.create_task(
            asyncio.to_thread(serve.run, app, name=name, route_prefix=f"/{name}")
        )

    async def status(self, key: str) -> LocalStatus | None:
        """Current status; restarts a Triton server whose process died."""
        entry = self._entries.get(key)
        return None if entry is None else await self._status(entry)

    async def _status(self, entry: _Entry) -> LocalStatus:
        if entry.spec.runtime == "triton":
            return await self._triton_status(entry)
        return await self._ray_status(entry)

    async def _triton_status(self, entry: _Entry) -> LocalStatus:
        server = entry.triton
        assert server is not None
        if not server.alive():
            entry.restarts += 1
            entry.message = f"tritonserver (pid {server.pid}) died; restarted"
            await asyncio.to_thread(server.start)
        ready = await server.ready()
        if ready:
            entry.message = ""
        t = server.spec
        return LocalStatus(
            key=entry.spec.key,
            runtime="triton",
            endpoint=t.http_url,
            ready=ready,
            replicas=t.instances if ready else 0,
            model_name=t.model_name,
            metrics_url=t.metrics_url,
            grpc_url=t.grpc_url,
            restarts=entry.restarts,
            message=entry.message,
        )

    async def _ray_status(self, entry: _Entry) -> LocalStatus:
        from ray import serve

        name = app_name(entry.spec.key)
        ready, running, message = False, 0, "deploying"
        if entry.deploy is not None and entry.deploy.done():
            exc = entry.deploy.exception()
            message = f"deploy failed: {exc}" if exc else ""
        with contextlib.suppress(Exception):
            app = (await asyncio.to_thread(serve.status)).applications.get(name)
            if app is not None:
                engine = app.deployments["SimEngine"]
                states = {str(getattr(k, "value", k)): v for k, v in engine.replica_states.items()}
                running = states.get("RUNNING", 0)
                ready = str(getattr(app.status, "value", app.status)) == "RUNNING"
                message = message or ("" if ready else str(app.message or app.status))
        endpoint = f"http://127.0.0.1:{self.ray_http_port}/{name}"
        return LocalStatus(
            key=entry.spec.key,
            runtime="rayServe",
            endpoint=endpoint,
            ready=ready,
            replicas=running,
            model_name=entry.spec.served_name,
            metrics_url=f"{endpoint}/metrics",
            message=message,
        )

    async def delete(self, key: str) -> None:
        """Stop and forget what runs for ``key`` (no error when nothing does)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        if entry.triton is not None:
            await asyncio.to_thread(entry.triton.stop)
        if entry.spec.runtime == "rayServe" and self._ray_started:
            from ray import serve

            if entry.deploy is not None and not entry.deploy.done():
                with contextlib.suppress(Exception):
                    await entry.deploy
            await asyncio.to_thread(serve.delete, app_name(key))

    async def close(self) -> None:
        """Stop every runtime, then Serve and the local Ray instance this started.

        Ray is shut down even when stopping a runtime fails; the first such error is
        raised afterwards.
        """
        errors: list[Exception] = []
        for key in list(self._entries):
            try:
                await self.delete(key)
            except Exception as exc:  # re-raised below, after the shutdown
                errors.append(exc)
        await self._stop_ray()
        if errors:
            raise errors[0]

    async def _stop_ray(self) -> None:
        import ray
        from ray import serve

        try:
            if self._ray_started or self._ray_owned:
                await asyncio.to_thread(serve.shutdown)
        finally:
            if self._ray_owned:
                await asyncio.to_thread(ray.shutdown)
            self._ray_started = self._ray_owned = False

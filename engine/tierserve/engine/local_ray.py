"""The local runner for ``runtime: rayServe``: Serve applications on one local Ray.

All applications share the Serve HTTP proxy on ``ray_http_port``; each is routed under
``/<app>`` (the key with ``/`` turned into ``--``), so its OpenAI base URL is
``{endpoint}/v1``. Replicas are the engine deployment's (``SimEngine``,
``LlamaCppEngine``) replica count; llama.cpp replicas get their threads capped so all
of them fit on this machine's cores, and reserve only 0.1 of Ray's logical CPUs (the
thread cap, not Ray, keeps them within the machine). Ray and Serve start with
the first application (with the configured CPU budget, no dashboard); ``close`` shuts
down a Ray this runner started and leaves one started elsewhere running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.engine.engines import SERVE_DEPLOYMENTS
from tierserve.engine.local_runner import RunnerSettings, app_name, engine_args_for

LOCAL_CPUS_PER_REPLICA = 0.1


@dataclass
class _App:
    spec: LocalSpec
    deploy: asyncio.Task[Any] | None = None  # serve.run, off the event loop


class RayServeRunner:
    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self._apps: dict[str, _App] = {}
        self._ray_started = False  # Serve is up (set once _start_ray returned)
        self._ray_owned = False  # this runner called ray.init, so close() shuts Ray down
        self._ray_lock = asyncio.Lock()

    async def apply(self, spec: LocalSpec) -> None:
        app = self._apps.get(spec.key)
        if app is not None and app.spec == spec and app.deploy is not None:
            return
        app = self._apps[spec.key] = _App(spec)
        await self._ensure_ray()
        app.deploy = self._deploy(spec)

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
            ray.init(num_cpus=self.settings.ray_num_cpus, include_dashboard=False,
                     log_to_driver=False)
            # Recorded before serve.start: a Ray this started must be shut down by close()
            # even when Serve then fails to start, or it stays connected in this process
            # (and a dead GCS later ends the whole process).
            self._ray_owned = True
        serve.start(http_options={"host": "127.0.0.1", "port": self.settings.ray_http_port})

    def _deploy(self, spec: LocalSpec) -> asyncio.Task[Any]:
        from ray import serve

        from tierserve.engine.serve_app import build_app

        args = engine_args_for(spec, self.settings.ray_num_cpus).model_dump(exclude_defaults=True)
        args = {**args, "served_name": spec.served_name,
                "num_cpus_per_replica": LOCAL_CPUS_PER_REPLICA}
        # the same code and settings keep their version: a new replica count then adds or
        # removes replicas in place instead of replacing them all
        version = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
        app = build_app({**args, "num_replicas": spec.replicas, "code_version": version})
        name = app_name(spec.key)
        # serve.run blocks until the application is running: keep it off the loop.
        return asyncio.create_task(
            asyncio.to_thread(serve.run, app, name=name, route_prefix=f"/{name}"))

    async def status(self, key: str) -> LocalStatus:
        from ray import serve

        app = self._apps[key]
        name = app_name(key)
        ready, running, message = False, 0, "deploying"
        if app.deploy is not None and app.deploy.done():
            exc = app.deploy.exception()
            message = f"deploy failed: {exc}" if exc else ""
        with contextlib.suppress(Exception):
            state = (await asyncio.to_thread(serve.status)).applications.get(name)
            if state is not None:
                engine = state.deployments[SERVE_DEPLOYMENTS[app.spec.engine]]
                states = {str(getattr(k, "value", k)): v for k, v in engine.replica_states.items()}
                running = states.get("RUNNING", 0)
                ready = str(getattr(state.status, "value", state.status)) == "RUNNING"
                message = message or ("" if ready else str(state.message or state.status))
        endpoint = f"http://127.0.0.1:{self.settings.ray_http_port}/{name}"
        return LocalStatus(key=key, runtime="rayServe", endpoint=endpoint, ready=ready,
                           replicas=running, model_name=app.spec.served_name,
                           metrics_url=f"{endpoint}/metrics", message=message)

    async def delete(self, key: str) -> None:
        app = self._apps.pop(key, None)
        if app is None or not self._ray_started:
            return
        from ray import serve

        if app.deploy is not None and not app.deploy.done():
            with contextlib.suppress(Exception):
                await app.deploy
        await asyncio.to_thread(serve.delete, app_name(key))

    async def close(self) -> None:
        """Shut down Serve and the local Ray instance this runner started."""
        if not (self._ray_started or self._ray_owned):
            return
        import ray
        from ray import serve

        try:
            await asyncio.to_thread(serve.shutdown)
        finally:
            if self._ray_owned:
                await asyncio.to_thread(ray.shutdown)
            self._ray_started = self._ray_owned = False

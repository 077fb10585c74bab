"""Local runtimes for ``tierserve operator --target local``.

:class:`LocalRuntimes` (a :class:`tierserve.core.local.LocalRuntime`) realizes
deployments on this machine instead of as Kubernetes children. It hands each deployment
to the runner of its runtime, chosen by the runtime plugin's ``local_runner`` key
(``tierserve.core.runtimes``) in :data:`LOCAL_RUNNERS`:

* ``rayServe``: a Ray Serve application on one shared local Ray (:mod:`.local_ray`);
* ``triton``: one ``tritonserver`` process per deployment (:mod:`.local_triton`).

The operator calls ``await apply(spec)`` (start, or update in place; idempotent, returns
at once while the runtime comes up in the background), ``await status(key)`` (endpoint,
readiness and running replicas; it also restarts what died, so call it periodically),
``await delete(key)`` and ``await close()`` (stop everything, including a Ray it
started). Runners start with the first deployment of their runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.core.runtimes import runtime_for
from tierserve.engine.local_ray import RayServeRunner
from tierserve.engine.local_runner import (
    LocalRunner,
    RunnerFactory,
    RunnerSettings,
    app_name,
    engine_args_for,
    free_port,
)
from tierserve.engine.local_triton import TritonRunner

LOCAL_RUNNERS: Mapping[str, RunnerFactory] = MappingProxyType({
    "rayServe": RayServeRunner,
    "triton": TritonRunner,
})

__all__ = ["LOCAL_RUNNERS", "LocalRuntimes", "LocalSpec", "LocalStatus", "app_name",
           "free_port"]


class LocalRuntimes:
    """Owns the local runtimes of all deployments. Use from one event loop."""

    def __init__(
        self,
        workdir: Path,
        ray_http_port: int = 8000,
        ray_num_cpus: int | None = None,
        port_allocator: Callable[[], int] = free_port,
        runners: Mapping[str, RunnerFactory] = LOCAL_RUNNERS,
    ) -> None:
        self.settings = RunnerSettings(workdir, ray_http_port, ray_num_cpus, port_allocator)
        self._factories = runners
        self._runners: dict[str, LocalRunner] = {}
        self._runner_of: dict[str, str] = {}  # deployment key -> runner key

    def keys(self) -> list[str]:
        return sorted(self._runner_of)

    def runner(self, name: str) -> LocalRunner:
        """The runner ``name`` (started on first use)."""
        if name not in self._runners:
            factory = self._factories.get(name)
            if factory is None:
                raise ValueError(f"no local runner {name!r} (have: "
                                 f"{', '.join(sorted(self._factories))})")
            self._runners[name] = factory(self.settings)
        return self._runners[name]

    async def apply(self, spec: LocalSpec) -> LocalStatus:
        """Start or update the runtime for ``spec.key``; returns the current status."""
        engine_args_for(spec)  # reject what no engine can run before starting anything
        if spec.replicas < 1:
            raise ValueError("replicas must be >= 1 (delete the deployment to stop it)")
        name = runtime_for(spec.runtime).local_runner
        runner = self.runner(name)
        if self._runner_of.get(spec.key, name) != name:  # the runtime changed
            await self.delete(spec.key)
        self._runner_of[spec.key] = name
        await runner.apply(spec)
        return await runner.status(spec.key)

    async def status(self, key: str) -> LocalStatus | None:
        """Current status (None for an unknown key); restarts what died."""
        name = self._runner_of.get(key)
        return None if name is None else await self._runners[name].status(key)

    async def delete(self, key: str) -> None:
        """Stop and forget what runs for ``key`` (no error when nothing does)."""
        name = self._runner_of.pop(key, None)
        if name is not None:
            await self._runners[name].delete(key)

    async def close(self) -> None:
        """Stop every deployment, then every runner (Serve and a Ray this started).

        The runners are closed even when stopping a deployment fails; the first error
        is raised afterwards.
        """
        errors: list[Exception] = []
        for key in list(self._runner_of):
            try:
                await self.delete(key)
            except Exception as exc:  # re-raised below, after the runners are closed
                errors.append(exc)
        for runner in self._runners.values():
            try:
                await runner.close()
            except Exception as exc:  # idem
                errors.append(exc)
        self._runners.clear()
        if errors:
            raise errors[0]

"""What every local runner shares: its settings and the interface
:class:`tierserve.engine.local.LocalRuntimes` drives it through.

One runner per runtime (``tierserve.engine.local_ray``, ``tierserve.engine.local_triton``)
owns that runtime's deployments on this machine; ``LocalRuntimes`` picks the runner by
the runtime plugin's ``local_runner`` key (``tierserve.core.runtimes``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.engine.engines import EngineArgs, engine_args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_name(key: str) -> str:
    """A deployment key (``namespace/name``) as a name safe in paths and URLs."""
    return re.sub(r"[^A-Za-z0-9_-]+", "--", key).strip("-") or "default"


def engine_args_for(spec: LocalSpec, cpus: int | None = None) -> EngineArgs:
    """The engine one replica of ``spec`` runs. Threads are capped so that all replicas
    fit on this machine's ``cpus`` (one thread each at worst): two replicas, two cores.
    Raises ``ValueError`` (or ``UnknownProfile``) for a spec no engine can run."""
    cap = max(1, (cpus or os.cpu_count() or 1) // max(spec.replicas, 1))
    return engine_args({
        "engine": spec.engine, "profile": spec.profile, "cold_start_s": spec.cold_start_s,
        "model": spec.model_uri or None, "chat_template": spec.chat_template,
        "threads": min(spec.threads or cap, cap), "stop": spec.stop,
    })


@dataclass(frozen=True)
class RunnerSettings:
    """Machine-wide settings; each runner reads the ones it needs."""

    workdir: Path  # state directory (each runner under its own subdirectory)
    ray_http_port: int = 8000  # Ray Serve's HTTP proxy, shared by all Serve apps
    ray_num_cpus: int | None = None  # None: Ray's own default
    port_allocator: Callable[[], int] = free_port


class LocalRunner(Protocol):
    """Runs the deployments of one runtime. ``apply`` is idempotent and returns once the
    runtime is starting; ``status`` also restarts what died."""

    async def apply(self, spec: LocalSpec) -> None: ...

    async def status(self, key: str) -> LocalStatus: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


RunnerFactory = Callable[[RunnerSettings], LocalRunner]

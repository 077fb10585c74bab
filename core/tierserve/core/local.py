"""The contract between the operator's local target and whatever runs engines locally.

``tierserve operator --target local`` realizes deployments as processes on this machine.
The operator owns *when* (reconcile, requeue, status); the engine component owns *how*
(Ray Serve applications, Triton server processes). Neither imports the other: the
operator depends on :class:`LocalRuntime` and a :data:`LocalRuntimeFactory` handed to it
by the composition root (``tierserve.cli``), which is the only place that knows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

RuntimeName = Literal["rayServe", "triton"]


@dataclass(frozen=True)
class LocalSpec:
    """What to run for one deployment (``key`` is e.g. ``namespace/name``)."""

    key: str
    runtime: RuntimeName
    profile: str  # engine "simulated": its latency profile; other engines ignore it
    served_name: str
    replicas: int = 1
    cold_start_s: float = 0.0
    engine: str = "simulated"  # spec.engine: which engine the runner starts
    model_uri: str = ""  # spec.model.uri, resolved by the engine (e.g. pypi://, file://)
    chat_template: str | None = None  # overrides the model's own (GGUF metadata) template
    threads: int | None = None  # CPU threads per replica (None: the engine's default)
    stop: tuple[str, ...] = ()  # stop strings added to every request (base models)


@dataclass(frozen=True)
class LocalStatus:
    """What the operator writes into the deployment's status."""

    key: str
    runtime: RuntimeName
    endpoint: str  # rayServe: OpenAI base is endpoint + "/v1"; triton: HTTP URL
    ready: bool
    replicas: int  # running replicas (Serve replicas / Triton instances when ready)
    model_name: str  # name clients send (served name; Triton: model directory name)
    metrics_url: str
    grpc_url: str | None = None
    restarts: int = 0
    message: str = ""


class LocalRuntime(Protocol):
    """Runs deployments on this machine. ``apply`` is idempotent and returns at once
    (the runtime comes up in the background); ``status`` also restarts what died."""

    async def apply(self, spec: LocalSpec) -> LocalStatus: ...

    async def status(self, key: str) -> LocalStatus | None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class LocalRuntimeFactory(Protocol):
    """Builds the :class:`LocalRuntime` for a state directory, Ray Serve HTTP port and
    Ray CPU budget (``None``: Ray's own default)."""

    def __call__(self, workdir: Path, ray_http_port: int,
                 ray_num_cpus: int | None) -> LocalRuntime: ...

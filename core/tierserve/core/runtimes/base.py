"""The runtime plugin contract: what the operator, the router and the engine need to know
about one serving runtime (Ray Serve, Triton), behind one interface.

A :class:`Runtime` says, for an ``LLMDeployment``:

* ``children(ctx)``: the child manifests it owns (pure desired state);
* ``readiness(ctx, observed)``: replicas and the ``Ready`` verdict, from the observed
  children's status (pure);
* ``router_endpoint(name, spec)``: the Service, port and wire protocol the router sends
  requests to, and the model name upstream;
* ``metrics(spec)``: the container port and path its engine metrics are scraped on;
* ``local_runner``: the key of the engine's runner for ``--target local``;
* ``requires``: the CustomResourceDefinitions its children need that a plain cluster
  does not have (KubeRay's RayService), and how to install them.

The operator, router and engine never import each other; they meet here, in core.
Implementations live one per module next to this one and are listed in the registry
(:mod:`tierserve.core.runtimes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.builders.common import BuildContext, Manifest

RouterProtocol = Literal["openai", "triton"]  # the router's backends (routerconfig)


@dataclass(frozen=True)
class RouterEndpoint:
    """Where and how the router reaches a deployment's replicas."""

    service: str  # the Service whose EndpointSlices list the replicas
    port_name: str  # the Service port (by name) the router sends requests to
    port: int  # its number, used when a slice names no port
    protocol: RouterProtocol
    upstream_model: str  # the model name the runtime expects in requests

    def cluster_url(self, namespace: str) -> str:
        """The Service's in-cluster URL (what ``status.endpoint`` reports)."""
        return f"http://{self.service}.{namespace}.svc:{self.port}"


@dataclass(frozen=True)
class MetricsEndpoint:
    """The container port and path a pod serves its engine metrics on.

    ``per_pod``: every replica's pod serves its own replica's metrics, so a direct scrape
    reads every ready pod of the runtime's Service (its EndpointSlices). False: one
    process aggregates all replicas (Ray Serve's ingress), so one scrape through the
    Service (``status.endpoint``) reads the whole deployment and per-pod scrapes would
    count it several times."""

    port: int
    path: str
    per_pod: bool = True


@dataclass(frozen=True)
class RequiredCrd:
    """A CustomResourceDefinition a runtime's children need, and how to install it."""

    name: str  # e.g. rayservices.ray.io
    api_version: str  # of the child kind, e.g. ray.io/v1
    kind: str  # e.g. RayService
    install: str  # what to do when it is missing (a command a platform team can run)


@dataclass(frozen=True)
class ObservedChildren:
    """The live children of one deployment (as cached from watches) and its pods."""

    objects: Mapping[tuple[str, str], Manifest] = field(default_factory=dict)  # (kind, name)
    pods: Sequence[Manifest] = ()

    def status(self, kind: str, name: str) -> Manifest:
        """The child's ``status`` (empty when the child or its status is not there yet)."""
        return (self.objects.get((kind, name)) or {}).get("status") or {}


@dataclass(frozen=True)
class Readiness:
    """Replica counts and the ``Ready`` condition's verdict (status, reason, message)."""

    replicas: int
    ready_replicas: int
    ready: bool
    reason: str
    message: str


def replica_readiness(desired: int, replicas: int, ready_replicas: int,
                      waiting_for: str | None = None) -> Readiness:
    """The verdict every runtime shares: ready when the ready replicas reach ``desired``.

    ``waiting_for`` names what the runtime itself still reports as not ready (None when
    it reports nothing beyond replica counts); it makes the verdict ``RuntimeNotReady``.
    """
    counts = f"{ready_replicas}/{desired} replicas ready"
    if desired == 0:
        return Readiness(replicas, ready_replicas, True, "ScaledToZero",
                         "scaled to zero; the router wakes it on the next request")
    if waiting_for is not None:
        return Readiness(replicas, ready_replicas, False, "RuntimeNotReady",
                         f"{counts}; waiting for {waiting_for}")
    ok = ready_replicas >= desired
    return Readiness(replicas, ready_replicas, ok,
                     "ReplicasReady" if ok else "ReplicasNotReady", counts)


class Runtime(Protocol):
    """One serving runtime; implementations are stateless."""

    @property
    def name(self) -> str:
        """The ``spec.runtime`` value it serves."""
        ...

    @property
    def protocol(self) -> RouterProtocol:
        """The wire protocol its endpoints speak."""
        ...

    @property
    def local_runner(self) -> str:
        """Key of the engine's local runner (``tierserve.engine.local``)."""
        ...

    @property
    def requires(self) -> tuple[RequiredCrd, ...]:
        """The CRDs its children's kinds come from (none for built-in kinds)."""
        ...

    def children(self, ctx: BuildContext) -> list[Manifest]:
        """Every child the operator owns for this deployment, in apply order."""
        ...

    def readiness(self, ctx: BuildContext, observed: ObservedChildren) -> Readiness:
        """Replicas and the ``Ready`` verdict from the children's status."""
        ...

    def router_endpoint(self, name: str, spec: LLMDeploymentSpec) -> RouterEndpoint:
        """Where the router sends requests for the LLMDeployment ``name``."""
        ...

    def metrics(self, spec: LLMDeploymentSpec) -> MetricsEndpoint | None:
        """Where its pods serve the engine's ``vllm:*`` metrics (None: not scraped)."""
        ...

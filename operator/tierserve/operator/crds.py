"""The runtimes' CRDs: which ones this cluster serves, from a watch on each of them.

A runtime whose CRD is missing (``rayServe`` without KubeRay: no ``rayservices.ray.io``)
cannot have its children created. The realizer asks :meth:`RuntimeCrds.missing` before
applying, so such an LLMDeployment reports ``Ready=False``, reason ``RuntimeNotInstalled``
(naming the CRD and how to install it) without a failing write on every resync; a 404 of
the kind from the apply itself (a race with the watch) says the same.

Why a watch and not only the periodic resync: the resync (5 minutes by default) would
pick the object up eventually, but the CRD's watch re-queues the waiting deployments the
moment the CRD is established, and tells the reflector of the child kind (waiting out its
slow re-check after the 404) to list at once, so the new children are cached and their
status read without a 60 s gap. Each watch is one reflector (the project's one list/watch
loop) on one CRD by name (a field selector), so the operator holds no other CRD's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.reflector import Change, Reflector, Resource, State
from tierserve.core.runtimes import RUNTIMES
from tierserve.core.runtimes.base import RequiredCrd, Runtime

CRD_API_VERSION = "apiextensions.k8s.io/v1"
REASON = "RuntimeNotInstalled"


class RuntimeNotInstalled(Exception):
    """The runtime's children need a CRD this cluster does not serve."""

    def __init__(self, runtime: str, crd: RequiredCrd) -> None:
        super().__init__(
            f"runtime {runtime} needs the {crd.kind} kind ({crd.api_version}), but its "
            f"CustomResourceDefinition {crd.name} is not installed in this cluster; {crd.install}")
        self.runtime, self.crd = runtime, crd


def required(runtimes: Iterable[Runtime] | None = None) -> dict[str, RequiredCrd]:
    """Every CRD any registered runtime needs, by CRD name."""
    plugins = RUNTIMES.values() if runtimes is None else runtimes
    return {crd.name: crd for runtime in plugins for crd in runtime.requires}


def established(crd: dict[str, Any] | None) -> bool:
    """The API server serves the CRD's kind (condition ``Established=True``)."""
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in conditions)


class RuntimeCrds:
    """One reflector per required CRD; :meth:`missing` answers from their caches and
    :meth:`listen` callbacks hear of every change of one (created, established, gone)."""

    def __init__(self, api: KubeApi, crds: dict[str, RequiredCrd] | None = None) -> None:
        self.crds = required() if crds is None else crds
        self._listeners: list[Callable[[RequiredCrd], None]] = []
        self.reflectors = {
            name: Reflector(api, Resource(CRD_API_VERSION, "CustomResourceDefinition",
                                          field_selector=f"metadata.name={name}"),
                            self._subscriber(crd))
            for name, crd in self.crds.items()}

    def listen(self, listener: Callable[[RequiredCrd], None]) -> None:
        self._listeners.append(listener)

    def _subscriber(self, crd: RequiredCrd) -> Callable[[Change], None]:
        def changed(_: Change) -> None:
            for listener in self._listeners:
                listener(crd)
        return changed

    def missing(self, runtime: Runtime) -> RequiredCrd | None:
        """The first CRD ``runtime`` needs that is known to be absent (or not yet
        established). A CRD whose watch is not running (e.g. RBAC refuses it) is
        unknown, not missing: the apply's answer decides then."""
        for crd in runtime.requires:
            reflector = self.reflectors.get(crd.name)
            if reflector is None or reflector.state is not State.WATCHING:
                continue
            if not established(reflector.objects.get(("", crd.name))):
                return crd
        return None

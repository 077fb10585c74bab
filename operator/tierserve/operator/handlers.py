"""Watch wiring: the shared reflectors feed the store and enqueue keys; kopf keeps what it
does well here (login from our credentials; the probes are :mod:`.health`'s).

Why the reflectors and not kopf's watches (docs/operator.md, "kopf's role"): kopf's
watches feed per-object handlers, while the operator needs one indexed cache (children
by owner) and a keyed work queue, and the router and autoscaler need the same list/watch
without kopf. One reflector implementation serves all three over one client.
"""

from __future__ import annotations

from typing import Any

import kopf

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.builders.common import MANAGED_BY
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials
from tierserve.core.kube.reflector import Change, Reflector, Resource
from tierserve.core.runtimes import RUNTIMES
from tierserve.core.runtimes.base import RequiredCrd
from tierserve.operator.crds import RuntimeCrds
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
CHILD_RESOURCES = (  # (apiVersion, kind) of everything the builders create, and pods
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("ray.io/v1", "RayService"),
    ("v1", "Pod"),
)


def reflectors(api: KubeApi, store: Store, queue: WorkQueue[Key], routes: WorkQueue[Key],
               namespaces: list[str], crds: RuntimeCrds | None = None) -> list[Reflector]:
    """Reflectors for LLMDeployments, LLMRoutes and managed children, per namespace (or
    cluster-wide), each feeding the store and the queues; plus the runtimes' CRDs
    (``crds``), whose changes re-queue the deployments that wait for them."""
    def deployment(change: Change) -> None:
        key = store.on_deployment(change)
        queue.add(key)
        for route in store.routes_referencing(key):  # existence/readiness feed route status
            routes.add(route)

    def route(change: Change) -> None:
        routes.add(store.on_route(change))

    def child(change: Change) -> None:
        owner = store.on_child(change)
        if owner is not None:
            queue.add(owner)

    out: list[Reflector] = []
    scopes: list[str | None] = [*namespaces] or [None]
    for ns in scopes:
        out.append(Reflector(api, Resource(API_VERSION, "LLMDeployment", ns), deployment))
        out.append(Reflector(api, Resource(API_VERSION, "LLMRoute", ns), route))
        out += [Reflector(api, Resource(version, kind, ns, label_selector=MANAGED_SELECTOR),
                          child) for version, kind in CHILD_RESOURCES]
    if crds is not None:
        children = list(out)
        crds.listen(lambda crd: crd_changed(crd, store, queue, children))
        out += crds.reflectors.values()
    return out


def crd_changed(crd: RequiredCrd, store: Store, queue: WorkQueue[Key],
                watched: list[Reflector]) -> None:
    """A runtime's CRD was created, established or deleted: the reflectors of its kind
    list at once (not after their slow re-check), and the deployments whose runtime
    needs it are reconciled again (RuntimeNotInstalled is not retried on its own)."""
    for r in watched:
        if (r.resource.api_version, r.resource.kind) == (crd.api_version, crd.kind):
            r.recheck()
    for key, body in store.deployments.items():
        runtime = RUNTIMES.get(str((body.get("spec") or {}).get("runtime")))
        if runtime is not None and crd in runtime.requires:
            queue.add(key)


def connection_info(credentials: Credentials) -> kopf.ConnectionInfo:
    """kopf's login, from the one client configuration (the token as of now)."""
    token = credentials.token()
    return kopf.ConnectionInfo(
        server=credentials.server, ca_path=credentials.ca_path,
        insecure=credentials.insecure or None, scheme="Bearer" if token else None,
        token=token, certificate_path=credentials.cert_path,
        private_key_path=credentials.key_path)


def register(registry: kopf.OperatorRegistry, credentials: Credentials) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf calls this again after a 401: the token is re-read then
        return connection_info(credentials)

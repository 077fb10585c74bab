"""kopf wiring: watch events only feed the store and enqueue keys.

Event handlers (not change-detecting ones) are used on purpose: kopf persists nothing
for them (no progress annotations, no finalizers), so the operator makes no writes of
its own in steady state.
"""

from __future__ import annotations

from typing import Any

import kopf

from tierserve.core.api.deployment import GROUP, VERSION
from tierserve.core.builders.common import MANAGED_BY
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("ray.io", "v1", "rayservices"),
    ("", "v1", "pods"),
)


def _deleted(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


def register(registry: kopf.OperatorRegistry, store: Store, queue: WorkQueue[Key],
             routes: WorkQueue[Key]) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has none of kopf's default login handlers: add the two
        # that need no client library (in-cluster token, then $KUBECONFIG).
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.event(GROUP, VERSION, "llmdeployments", registry=registry)
    async def deployment_event(event: kopf.RawEvent, **_: Any) -> None:
        key = store.put_deployment(dict(event["object"]), _deleted(event))
        queue.add(key)
        for route in store.routes_referencing(key):  # existence/readiness feed route status
            routes.add(route)

    @kopf.on.event(GROUP, VERSION, "llmroutes", registry=registry)
    async def route_event(event: kopf.RawEvent, **_: Any) -> None:
        routes.add(store.put_route(dict(event["object"]), _deleted(event)))

    for group, version, plural in CHILD_RESOURCES:
        @kopf.on.event(group, version, plural, labels=MANAGED, registry=registry,
                       id=f"child-{plural}")
        async def child_event(event: kopf.RawEvent, **_: Any) -> None:
            owner = store.put_child(dict(event["object"]), _deleted(event))
            if owner is not None:
                queue.add(owner)

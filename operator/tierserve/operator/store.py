"""In-memory view of the objects the operator watches, fed by the shared reflectors.

Reconciliation reads only from here, so a reconcile of an unchanged object makes no API
calls at all. Children are indexed by their controlling LLMDeployment (owner reference),
pods by the ``tierserve.io/deployment`` label (KubeRay-created pods carry our template
labels but not our owner reference).

Two ways in, kept apart because ``resourceVersion`` is opaque and cannot say which of two
versions is newer (:mod:`tierserve.core.kube.cache`):

* ``on_*`` take the reflectors' changes (in watch order): the base layer;
* ``put_*`` take the answers to our own writes and reads: laid over the base until the
  watch delivers that same version, so a late watch event cannot roll our write back
  (which would cause a duplicate write).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from tierserve.core.builders.common import DEPLOYMENT_LABEL
from tierserve.core.kube.cache import DEFAULT_TTL_S, Layered
from tierserve.core.kube.reflector import Change

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str]  # (kind, name)
Body = dict[str, Any]
T = TypeVar("T")


def key_of(body: Body) -> Key:
    meta = body["metadata"]
    return meta.get("namespace") or "", meta["name"]


def owner_of(body: Body) -> Key | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "LLMDeployment" and ref.get("controller"):
            return meta.get("namespace") or "", ref["name"]
    label = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
    return (meta.get("namespace") or "", label) if label else None


def _apply(bucket: Layered[T], key: T, body: Body, deleted: bool, ours: bool) -> T:
    if deleted:
        bucket.remove(key)
    elif ours:
        bucket.record(key, body)
    else:
        bucket.observe(key, body)
    return key


class Store:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        def layered() -> Layered[Any]:
            return Layered(ttl_s, clock)

        self.deployments: Layered[Key] = layered()
        self.children: dict[Key, Layered[ChildKey]] = defaultdict(layered)
        self.pods: dict[Key, Layered[str]] = defaultdict(layered)
        self.routes: Layered[Key] = layered()

    # --- the watch (reflector subscribers) ---

    def on_deployment(self, change: Change) -> Key:
        return _apply(self.deployments, key_of(change.obj), change.obj, change.deleted, False)

    def on_route(self, change: Change) -> Key:
        return _apply(self.routes, key_of(change.obj), change.obj, change.deleted, False)

    def on_child(self, change: Change) -> Key | None:
        return self._child(change.obj, change.deleted, ours=False)

    # --- our own writes and reads ---

    def put_deployment(self, body: Body, deleted: bool) -> Key:
        return _apply(self.deployments, key_of(body), body, deleted, True)

    def put_route(self, body: Body, deleted: bool) -> Key:
        return _apply(self.routes, key_of(body), body, deleted, True)

    def put_child(self, body: Body, deleted: bool) -> Key | None:
        """Record a child; returns its owner's key (to enqueue) or None."""
        return self._child(body, deleted, ours=True)

    def _child(self, body: Body, deleted: bool, ours: bool) -> Key | None:
        owner = owner_of(body)
        if owner is None:
            return None
        name = body["metadata"]["name"]
        if body.get("kind") == "Pod":
            _apply(self.pods[owner], name, body, deleted, ours)
        else:
            _apply(self.children[owner], (body.get("kind", ""), name), body, deleted, ours)
        return owner

    # --- reads ---

    def routes_referencing(self, deployment: Key) -> list[Key]:
        """Routes in the deployment's namespace that name it anywhere in their spec."""
        ns, name = deployment
        out = []
        for key, body in self.routes.items():
            spec = body.get("spec") or {}
            names = {v.get("deployment") for v in spec.get("variants") or []}
            names |= {(spec.get("tiers") or {}).get(t) for t in ("fast", "slow")}
            names |= set(spec.get("fallback") or [])
            if key[0] == ns and name in names:
                out.append(key)
        return out

    def child(self, owner: Key, kind: str, name: str) -> Body | None:
        bucket = self.children.get(owner)
        return None if bucket is None else bucket.get((kind, name))

    def pods_of(self, owner: Key) -> list[Body]:
        bucket = self.pods.get(owner)
        return [] if bucket is None else list(bucket.values())

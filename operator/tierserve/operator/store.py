"""In-memory view of the objects the operator watches, fed by kopf's watch events.

Reconciliation reads only from here, so a reconcile of an unchanged object makes no API
calls at all. Children are indexed by their controlling LLMDeployment (owner reference),
pods by the ``tierserve.io/deployment`` label (KubeRay-created pods carry our template
labels but not our owner reference).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, TypeVar

from tierserve.core.builders.common import DEPLOYMENT_LABEL

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str]  # (kind, name)
Body = dict[str, Any]
T = TypeVar("T")


def key_of(body: Body) -> Key:
    meta = body["metadata"]
    return meta.get("namespace") or "", meta["name"]


def _version(body: Body) -> int:
    rv = body.get("metadata", {}).get("resourceVersion", "0")
    return int(rv) if str(rv).isdigit() else 0


def _put(bucket: dict[T, Body], key: T, body: Body, deleted: bool) -> T:
    """Record ``body`` unless the bucket holds a newer version (watch events and our own
    write responses can arrive out of order); drop it when deleted."""
    if deleted:
        bucket.pop(key, None)
    elif _version(body) >= _version(bucket.get(key, {})):
        bucket[key] = body
    return key


def owner_of(body: Body) -> Key | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "LLMDeployment" and ref.get("controller"):
            return meta.get("namespace") or "", ref["name"]
    label = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
    return (meta.get("namespace") or "", label) if label else None


class Store:
    def __init__(self) -> None:
        self.deployments: dict[Key, Body] = {}
        self.children: dict[Key, dict[ChildKey, Body]] = defaultdict(dict)
        self.pods: dict[Key, dict[str, Body]] = defaultdict(dict)
        self.routes: dict[Key, Body] = {}

    def put_deployment(self, body: Body, deleted: bool) -> Key:
        return _put(self.deployments, key_of(body), body, deleted)

    def put_route(self, body: Body, deleted: bool) -> Key:
        return _put(self.routes, key_of(body), body, deleted)

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

    def put_child(self, body: Body, deleted: bool) -> Key | None:
        """Record a child; returns its owner's key (to enqueue) or None."""
        owner = owner_of(body)
        if owner is None:
            return None
        bucket = self.pods[owner] if body.get("kind") == "Pod" else self.children[owner]
        ckey: Any = body["metadata"]["name"] if body.get("kind") == "Pod" \
            else (body.get("kind", ""), body["metadata"]["name"])
        _put(bucket, ckey, body, deleted)
        return owner

    def child(self, owner: Key, kind: str, name: str) -> Body | None:
        return self.children.get(owner, {}).get((kind, name))

    def pods_of(self, owner: Key) -> list[Body]:
        return list(self.pods.get(owner, {}).values())

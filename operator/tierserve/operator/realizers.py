"""Realizers turn a BuildContext into running replicas and report what they observe.

:class:`KubernetesRealizer` applies child manifests (server-side apply) only where the
cached child differs from the desired one, deletes the owned children the desired state
no longer has (:mod:`.prune`, after the desired ones are applied, one Event each), then
reads replicas and scheduling problems from the cached children and pods. A runtime
whose CRD the cluster lacks raises :class:`~.crds.RuntimeNotInstalled` before anything
is written (or when the apply meets the 404 of the kind), so the old children stay. A
local realizer (``--target local``) implements the same protocol with local processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.builders import BuildContext
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import NotFound
from tierserve.core.kube.events import post_event
from tierserve.core.runtimes import runtime_for
from tierserve.core.runtimes.base import ObservedChildren
from tierserve.operator.crds import RuntimeCrds, RuntimeNotInstalled
from tierserve.operator.prune import obsolete, prune_message
from tierserve.operator.status import Observed
from tierserve.operator.store import ChildKey, Key, Store

log = logging.getLogger("tierserve.operator")


class Realizer(Protocol):
    async def realize(self, key: Key, ctx: BuildContext) -> Observed: ...

    async def forget(self, key: Key) -> None: ...

    async def close(self) -> None: ...


def first_difference(desired: Any, observed: Any, path: str = "") -> str | None:
    """Path of the first field we set whose live value differs; None when all match.

    Empty lists and maps count as unset: the API server drops them on write.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return path or "."
        for k, v in desired.items():
            if k not in observed:
                if v not in ({}, [], None):
                    return f"{path}.{k}"
            elif (diff := first_difference(v, observed[k], f"{path}.{k}")) is not None:
                return diff
        return None
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return path
        for i, (d, o) in enumerate(zip(desired, observed, strict=True)):
            if (diff := first_difference(d, o, f"{path}[{i}]")) is not None:
                return diff
        return None
    return None if desired == observed else path


def is_subset(desired: Any, observed: Any) -> bool:
    """True when every field we set has the same value in the live object."""
    return first_difference(desired, observed) is None


def unschedulable_message(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                    and cond.get("reason") == "Unschedulable"):
                return f"pod {pod['metadata']['name']} cannot be scheduled: {cond.get('message')}"
    return None


def involved(ctx: BuildContext) -> dict[str, Any]:
    """The LLMDeployment as an Event's involved object."""
    return {"apiVersion": API_VERSION, "kind": "LLMDeployment",
            "metadata": {"name": ctx.name, "namespace": ctx.namespace, "uid": ctx.uid}}


def _not_installed(ctx: BuildContext, child: dict[str, Any], exc: NotFound) -> Exception:
    """RuntimeNotInstalled when the 404 is the kind of one of the runtime's CRDs (the
    CRD watch had not caught up), else the error itself."""
    runtime = runtime_for(ctx.spec.runtime)
    for crd in runtime.requires:
        if exc.kind_missing and (crd.api_version, crd.kind) == (child["apiVersion"],
                                                                 child["kind"]):
            return RuntimeNotInstalled(runtime.name, crd)
    return exc


class KubernetesRealizer:
    def __init__(self, api: KubeApi, store: Store, crds: RuntimeCrds | None = None) -> None:
        self.api, self.store, self.crds = api, store, crds
        # key -> ((uid, generation), children): built once per spec generation
        self._children: dict[Key, tuple[tuple[str, int], list[dict[str, Any]]]] = {}
        # key -> uids deleted by a prune: a late watch event of one (before its DELETED)
        # must not become a second delete and a second Event
        self._pruned: dict[Key, set[str]] = {}

    def _desired(self, key: Key, ctx: BuildContext) -> list[dict[str, Any]]:
        stamp = (ctx.uid, ctx.generation)
        cached = self._children.get(key)
        if cached is None or cached[0] != stamp:
            children = runtime_for(ctx.spec.runtime).children(ctx)
            cached = self._children[key] = (stamp, children)
        return cached[1]

    async def realize(self, key: Key, ctx: BuildContext) -> Observed:
        runtime = runtime_for(ctx.spec.runtime)
        missing = self.crds.missing(runtime) if self.crds is not None else None
        if missing is not None:
            raise RuntimeNotInstalled(runtime.name, missing)
        desired = self._desired(key, ctx)
        # Children are independent objects (a pod waits for its ConfigMap by itself), so
        # they converge concurrently: one round trip per reconcile instead of three.
        await asyncio.gather(*(self._converge(key, ctx, c) for c in desired))
        await self._prune(key, ctx, desired)
        return self.observe(key, ctx)

    async def _prune(self, key: Key, ctx: BuildContext, desired: list[dict[str, Any]]) -> None:
        """Delete the owned children the desired state no longer has (a runtime switch's
        old children), each exactly the object observed (uid precondition)."""
        observed: Mapping[ChildKey, dict[str, Any]] = self.store.children.get(key) or {}
        pruned = self._pruned.setdefault(key, set())
        pruned &= {str(c["metadata"].get("uid")) for c in observed.values()}
        for child in obsolete(desired, observed, ctx.name, ctx.uid):
            meta = child["metadata"]
            uid = meta.get("uid")
            if uid in pruned:
                continue
            await self.api.delete(child["apiVersion"], child["kind"], ctx.namespace,
                                  meta["name"], uid=uid)
            pruned.add(str(uid))
            self.store.put_child(child, deleted=True)
            message = prune_message(child, ctx.spec.runtime)
            log.info("%s/%s: %s", ctx.namespace, ctx.name, message)
            await post_event(self.api, involved(ctx), "Pruned", message)

    def observe(self, key: Key, ctx: BuildContext) -> Observed:
        """The runtime's verdict on the cached children, where they serve, and why pods
        cannot be scheduled (if so)."""
        runtime = runtime_for(ctx.spec.runtime)
        pods = self.store.pods_of(key)
        observed = ObservedChildren(self.store.children.get(key, {}), pods)
        endpoint = runtime.router_endpoint(ctx.name, ctx.spec).cluster_url(ctx.namespace)
        return Observed.of(runtime.readiness(ctx, observed), endpoint,
                           unschedulable=unschedulable_message(pods))

    async def _converge(self, key: Key, ctx: BuildContext, child: dict[str, Any]) -> None:
        live = await self._live(key, child)
        diff = "missing" if live is None else first_difference(child, live)
        if diff is not None:
            log.debug("apply %s %s/%s (%s)", child["kind"], ctx.namespace,
                      child["metadata"]["name"], diff)
            try:
                applied = await self.api.apply(child)
            except NotFound as exc:  # the kind may be the runtime's missing CRD
                raise _not_installed(ctx, child, exc) from exc
            self.store.put_child(applied, deleted=False)

    async def _live(self, key: Key, child: dict[str, Any]) -> dict[str, Any] | None:
        """The cached child; on a cache miss (e.g. watches still listing after a restart)
        read it once, so a restart does not re-apply children that already exist."""
        meta = child["metadata"]
        live = self.store.child(key, child["kind"], meta["name"])
        if live is None:
            live = await self.api.get(child["apiVersion"], child["kind"], meta["namespace"],
                                      meta["name"])
            if live is not None:
                live.setdefault("kind", child["kind"])
                self.store.put_child(live, deleted=False)
        return live

    async def forget(self, key: Key) -> None:
        """Children go with their owner through garbage collection."""
        self._children.pop(key, None)
        self._pruned.pop(key, None)

    async def close(self) -> None:
        """Nothing to stop: the children live in the cluster."""

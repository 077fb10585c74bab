"""Which live children of an LLMDeployment its desired state no longer contains.

A spec change can make children obsolete: switching ``spec.runtime`` from ``triton`` to
``rayServe`` replaces a Deployment, a Service and a ConfigMap with one RayService, and
without pruning the old Deployment keeps its GPU pods. Garbage collection does not help
(the owner still exists), so the realizer deletes them.

Pure: the desired manifests and the cached children in, the children to delete out. A
child is deleted only when the operator provably made it for this object: it carries the
operator's labels for this deployment *and* a controller owner reference to this
LLMDeployment's uid. Anything else is left alone, for example a Service KubeRay made from
our pod template's labels (owned by KubeRay's RayCluster) or an object someone labelled
by hand. Children already being deleted are skipped, so one that waits on a finalizer
does not become a delete (and an Event) per reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tierserve.core.api.deployment import GROUP
from tierserve.core.builders.common import DEPLOYMENT_LABEL, MANAGED_BY

Manifest = dict[str, Any]
ChildKey = tuple[str, str]  # (kind, name)


def child_key(manifest: Mapping[str, Any]) -> ChildKey:
    return str(manifest.get("kind") or ""), str(manifest["metadata"]["name"])


def owned_by(child: Mapping[str, Any], name: str, uid: str) -> bool:
    """The child carries the operator's labels for ``name`` and a controller owner
    reference to the LLMDeployment ``name`` with ``uid``."""
    meta = child.get("metadata") or {}
    labels = meta.get("labels") or {}
    if (labels.get("app.kubernetes.io/managed-by") != MANAGED_BY
            or labels.get(DEPLOYMENT_LABEL) != name):
        return False
    return any(ref.get("kind") == "LLMDeployment" and ref.get("name") == name
               and ref.get("uid") == uid and ref.get("controller") is True
               and str(ref.get("apiVersion", "")).split("/")[0] == GROUP
               for ref in meta.get("ownerReferences") or [])


def obsolete(desired: Iterable[Mapping[str, Any]], observed: Mapping[ChildKey, Manifest],
             name: str, uid: str) -> list[Manifest]:
    """The observed children to delete: owned (:func:`owned_by`), not being deleted, and
    not among the desired ones (by kind and name), in a stable order."""
    wanted = {child_key(d) for d in desired}
    out = [child for key, child in observed.items()
           if key not in wanted and key[0] and owned_by(child, name, uid)
           and not (child.get("metadata") or {}).get("deletionTimestamp")]
    return sorted(out, key=child_key)


def prune_message(child: Mapping[str, Any], runtime: str) -> str:
    """The Event text for one deleted child."""
    kind, name = child_key(child)
    return (f"deleted {kind} {name}: no longer part of the desired state "
            f"(runtime {runtime})")

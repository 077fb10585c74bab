"""The autoscaler's discovery I/O: list and watch LLMDeployments, feed them to the pure
:class:`tierserve.autoscaler.discovery.Discovery`.

List first (the whole set, so targets of objects deleted while we were not watching are
dropped), then watch from the list's resourceVersion; when the watch ends or breaks (410
Gone, API server restart) list again after a short pause. Errors never end the loop: the
controller keeps autoscaling the targets it has while discovery recovers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tierserve.autoscaler.discovery import Discovery
from tierserve.core.api.deployment import API_VERSION
from tierserve.core.kube.client import KubeApi

log = logging.getLogger(__name__)
KIND = "LLMDeployment"


async def _list(api: KubeApi, namespace: str | None, discovery: Discovery) -> str:
    items, version = await api.list_versioned(API_VERSION, KIND, namespace)
    discovery.replace_all(items)
    return version


def _apply(event: dict[str, Any], discovery: Discovery) -> bool:
    """One watch event; False when the watch must be restarted from a fresh list."""
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        log.info("LLMDeployment watch error, re-listing: %s", obj.get("message", obj))
        return False
    if kind in ("ADDED", "MODIFIED"):
        discovery.upsert(obj)
    elif kind == "DELETED":
        meta = obj.get("metadata") or {}
        discovery.delete(str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
    return True


async def watch_deployments(api: KubeApi, namespace: str | None, discovery: Discovery,
                            stop: asyncio.Event, *, retry_s: float = 2.0,
                            timeout_s: int = 300) -> None:
    """Keep ``discovery`` in step with the LLMDeployments of ``namespace`` (None: all)."""
    while not stop.is_set():
        try:
            version = await _list(api, namespace, discovery)
            async for event in api.watch(API_VERSION, KIND, namespace, version,
                                         timeout_s=timeout_s):
                if stop.is_set() or not _apply(event, discovery):
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API server is away: keep the targets we have
            log.warning("LLMDeployment discovery failed, retrying: %s", exc)
        if not stop.is_set():
            await asyncio.sleep(retry_s)


async def initial_targets(api: KubeApi, namespace: str | None, discovery: Discovery) -> None:
    """One list, for ``--once`` runs."""
    await _list(api, namespace, discovery)

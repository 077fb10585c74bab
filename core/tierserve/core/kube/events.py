"""Kubernetes Events on an object, posted only on real transitions by the caller."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tierserve.core.kube.client import KubeApi

COMPONENT = "tierserve-operator"


async def post_event(api: KubeApi, involved: dict[str, Any], reason: str, message: str,
                     warning: bool = False) -> None:
    meta = involved["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await api.create({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta.get("uid")},
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })

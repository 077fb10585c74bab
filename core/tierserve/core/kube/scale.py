"""The autoscaler's window onto the cluster: the LLMDeployment scale subresource, Events,
and the observed-SLO block of status (``status.slo``, owned by the autoscaler)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.events import post_event

KIND = "LLMDeployment"
# autoscaler's observation keys -> status.slo fields (see tierserve.core.api.deployment.SLOStatus)
_STATUS_KEYS = {"ttftP95Ms": "observedTtftP95Ms", "tpotP95Ms": "observedTpotP95Ms",
                "ttftTargetMs": "ttftTargetMs", "tpotTargetMs": "tpotTargetMs",
                "attainment": "attainment", "targetAttainment": "targetAttainment",
                "windowSeconds": "windowSeconds", "desiredReplicas": "desiredReplicas",
                "conditions": "conditions"}


class KubeScaleWriter:
    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def get_scale(self, ns: str, name: str) -> tuple[int, int]:
        obj = await self.api.get(API_VERSION, KIND, ns, name)
        if obj is None:
            raise LookupError(f"LLMDeployment {ns}/{name} not found")
        status = obj.get("status") or {}
        return int(obj["spec"].get("replicas", 0)), int(status.get("readyReplicas") or 0)

    async def set_scale(self, ns: str, name: str, replicas: int, reason: str) -> None:
        await self.api.patch_scale(API_VERSION, KIND, ns, name, replicas)
        obj = await self.api.get(API_VERSION, KIND, ns, name)
        if obj is not None:
            await post_event(self.api, obj, "Scaled", f"scaled to {replicas}: {reason}")

    async def event(self, ns: str, name: str, reason: str, message: str,
                    warning: bool) -> None:
        """An Event on the deployment (the autoscaler's SLOUnattainable/SLOAttainable)."""
        obj = await self.api.get(API_VERSION, KIND, ns, name)
        if obj is not None:
            await post_event(self.api, obj, reason, message, warning=warning)

    async def record_status(self, ns: str, name: str, observed: dict[str, Any]) -> None:
        slo = {_STATUS_KEYS[k]: v for k, v in observed.items() if k in _STATUS_KEYS}
        slo["updated"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.api.patch_status(API_VERSION, KIND, ns, name, {"slo": slo})

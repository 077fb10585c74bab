"""Reconciler + KubernetesRealizer against an in-memory API: the fast path for the
write-discipline properties the e2e tests prove against the real API server."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tierserve.core.builders import BuildSettings
from tierserve.core.kube.client import KubeApi
from tierserve.operator.realizers import KubernetesRealizer
from tierserve.operator.reconciler import Reconciler
from tierserve.operator.store import Store
from tierserve.operator.workqueue import WorkQueue

DOC = yaml.safe_load("""
apiVersion: tierserve.io/v1alpha1
kind: LLMDeployment
metadata: {name: chat, namespace: ns, uid: u-1, generation: 1, resourceVersion: "1"}
spec:
  model: {name: chat, uri: "hf://org/m", parametersBillions: 8}
  runtime: triton
  engine: vllm
  accelerator: {type: L4}
  slo: {ttftP95Ms: 1500, tpotP95Ms: 60}
""")


class FakeApi(KubeApi):
    """Answers like the API server would for the calls the reconciler makes. A KubeApi so
    mypy holds it to the real signatures; it never connects (no base initialiser)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.wrote: list[str] = []  # not `writes`: KubeApi counts its writes there
        self.version = 10

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.wrote.append(f"apply {manifest['kind']}")
        obj = self._stamp(manifest)
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = obj
        return obj

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        self.wrote.append("status")
        body = copy.deepcopy(DOC)
        body["status"] = status
        return self._stamp(body)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.wrote.append(f"create {manifest['kind']}")
        return manifest


def _reconciler() -> tuple[Reconciler, FakeApi, Store]:
    api, store = FakeApi(), Store()
    realizer = KubernetesRealizer(api, store)
    rec = Reconciler(api, store, realizer, WorkQueue(), BuildSettings(), clock=lambda: "T")
    store.put_deployment(copy.deepcopy(DOC), deleted=False)
    return rec, api, store


async def test_first_reconcile_creates_children_status_and_one_event() -> None:
    rec, api, _ = _reconciler()
    await rec.handle(("ns", "chat"))
    assert sorted(api.wrote) == ["apply ConfigMap", "apply Deployment", "apply Service",
                                  "create Event", "status"]


async def test_second_reconcile_writes_nothing() -> None:
    rec, api, _ = _reconciler()
    await rec.handle(("ns", "chat"))
    api.wrote.clear()
    for _ in range(3):
        await rec.handle(("ns", "chat"))
    assert api.wrote == []


async def test_hand_edit_of_a_child_is_reapplied_once() -> None:
    rec, api, store = _reconciler()
    await rec.handle(("ns", "chat"))
    live = store.child(("ns", "chat"), "Deployment", "chat")
    assert live is not None
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 7
    api.version += 1  # the edit is a write: resource versions only grow
    edited["metadata"]["resourceVersion"] = str(api.version)
    store.put_child(edited, deleted=False)
    api.wrote.clear()
    await rec.handle(("ns", "chat"))
    await rec.handle(("ns", "chat"))
    assert api.wrote == ["apply Deployment"]


async def test_unfittable_spec_is_a_condition_not_a_retry() -> None:
    rec, api, store = _reconciler()
    body = store.deployments[("ns", "chat")]
    body["spec"]["model"]["parametersBillions"] = 400
    body["spec"]["accelerator"]["gpusPerReplica"] = 1
    await rec.handle(("ns", "chat"))
    assert "status" in api.wrote and not any(w.startswith("apply") for w in api.wrote)
    status = store.deployments[("ns", "chat")]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InsufficientGPUMemory"

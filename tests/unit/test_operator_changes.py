"""Spec changes on live objects, through the Reconciler and the KubernetesRealizer against
an in-memory API (the e2e tests prove the same against the real API server): a runtime
switch prunes with one delete and one Event per child, a missing runtime CRD is a
condition without writes to children, an unplannable generation keeps the old plan."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from tests.unit.test_reconciler import DOC, FakeApi
from tierserve.core.api.deployment import API_VERSION
from tierserve.core.builders import BuildSettings
from tierserve.core.kube.errors import ApiError
from tierserve.core.kube.reflector import Change, ChangeType, State
from tierserve.operator.crds import RuntimeCrds
from tierserve.operator.realizers import KubernetesRealizer
from tierserve.operator.reconciler import Reconciler
from tierserve.operator.routes import RouteReconciler, route_status
from tierserve.operator.settings import OperatorSettings
from tierserve.operator.store import Store
from tierserve.operator.workqueue import WorkQueue

KEY = ("ns", "chat")
CRD = "rayservices.ray.io"


class Api(FakeApi):
    """FakeApi that gives objects uids, deletes, and can refuse one kind (404)."""

    def __init__(self, unserved: str | None = None) -> None:
        super().__init__()
        self.unserved = unserved
        self.deleted: list[tuple[str, str, str | None]] = []
        self.events: list[dict[str, Any]] = []
        self.body: dict[str, Any] = copy.deepcopy(DOC)  # the LLMDeployment as stored

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        self.wrote.append("status")
        self.body["status"] = {**(self.body.get("status") or {}), **status}
        return self._stamp(self.body)

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = super()._stamp(obj)
        out["metadata"].setdefault("uid", f"uid-{obj.get('kind')}-{obj['metadata']['name']}")
        return out

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] == self.unserved:
            raise ApiError(404, '{"kind": "Status", "code": 404, "reason": "NotFound", '
                                '"message": "the server could not find the requested '
                                'resource", "details": {}}')
        return await super().apply(manifest)

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
                     uid: str | None = None) -> None:
        self.wrote.append(f"delete {kind}")
        self.deleted.append((kind, name, uid))
        self.objects.pop((kind, name), None)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.events.append(manifest)
        return await super().create(manifest)


def setup(spec: dict[str, Any], api: Api, crds: RuntimeCrds | None = None
          ) -> tuple[Reconciler, Store]:
    store = Store()
    rec = Reconciler(api, store, KubernetesRealizer(api, store, crds), WorkQueue(),
                     BuildSettings(), clock=lambda: "2026-01-01T00:00:00Z")
    api.body["spec"].update(spec)
    store.put_deployment(copy.deepcopy(api.body), deleted=False)
    return rec, store


def new_generation(api: Api, store: Store, spec: dict[str, Any]) -> None:
    """A spec edit: the stored object's next generation, as the watch delivers it."""
    api.body = api._stamp({**store.deployments[KEY], "spec": {
        **store.deployments[KEY]["spec"], **spec}})
    api.body["metadata"]["generation"] += 1
    store.put_deployment(copy.deepcopy(api.body), deleted=False)


def ready(store: Store) -> dict[str, Any]:
    conditions = store.deployments[KEY]["status"]["conditions"]
    return dict(next(c for c in conditions if c["type"] == "Ready"))


SIMULATED = {"engine": "simulated"}


async def test_runtime_switch_prunes_each_old_child_once_with_an_event() -> None:
    api = Api()
    rec, store = setup(SIMULATED, api)
    await rec.handle(KEY)
    uids = {k[1]: o["metadata"]["uid"] for k, o in api.objects.items()}
    new_generation(api, store, {"runtime": "rayServe"})
    api.wrote.clear()
    await rec.handle(KEY)
    assert sorted(api.deleted) == [("ConfigMap", "chat-model-repo", uids["chat-model-repo"]),
                                   ("Deployment", "chat", "uid-Deployment-chat"),
                                   ("Service", "chat", "uid-Service-chat")]
    assert api.wrote[0] == "apply RayService"  # the new runtime first, then the old goes
    pruned = [e for e in api.events if e["reason"] == "Pruned"]
    assert len(pruned) == 3 and {e["type"] for e in pruned} == {"Normal"}
    assert pruned[0]["involvedObject"]["uid"] == DOC["metadata"]["uid"]
    api.wrote.clear()
    await rec.handle(KEY)
    assert api.wrote == []  # steady state again: nothing left to prune


async def test_a_late_watch_event_of_a_pruned_child_is_not_deleted_twice() -> None:
    api = Api()
    rec, store = setup(SIMULATED, api)
    await rec.handle(KEY)
    old = copy.deepcopy(api.objects[("Deployment", "chat")])
    new_generation(api, store, {"runtime": "rayServe"})
    await rec.handle(KEY)
    api.wrote.clear()
    store.on_child(Change(ChangeType.MODIFIED, ("ns", "chat"), old))  # in flight before
    await rec.handle(KEY)
    assert api.wrote == []


def established_crds(api: Api, established: bool) -> RuntimeCrds:
    crds = RuntimeCrds(api)
    reflector = crds.reflectors[CRD]
    reflector.state = State.WATCHING
    if established:
        reflector.objects.observe(("", CRD), {
            "metadata": {"name": CRD, "resourceVersion": "1"},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    return crds


async def test_missing_runtime_crd_is_a_condition_and_no_write_to_children() -> None:
    api = Api()
    crds = established_crds(api, established=False)
    rec, store = setup({"runtime": "rayServe", **SIMULATED}, api, crds)
    await rec.handle(KEY)
    assert api.wrote == ["status", "create Event"]
    condition = ready(store)
    assert (condition["status"], condition["reason"]) == ("False", "RuntimeNotInstalled")
    assert CRD in condition["message"] and "helm install kuberay-operator" in condition["message"]
    (event,) = api.events
    assert (event["type"], event["reason"]) == ("Warning", "RuntimeNotInstalled")
    api.wrote.clear()
    await rec.handle(KEY)  # the resync's repeat: nothing written, not even a failed apply
    assert api.wrote == []
    crds.reflectors[CRD].objects.observe(("", CRD), {
        "metadata": {"name": CRD, "resourceVersion": "2"},
        "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    await rec.handle(KEY)
    assert api.wrote[0] == "apply RayService"
    assert ready(store)["reason"] == "RuntimeNotReady"


async def test_a_404_of_the_runtimes_kind_is_runtime_not_installed() -> None:
    """The CRD's watch has not caught up (or does not run): the apply's answer decides."""
    api = Api(unserved="RayService")
    rec, store = setup({"runtime": "rayServe", **SIMULATED}, api)
    await rec.handle(KEY)
    assert ready(store)["reason"] == "RuntimeNotInstalled"


async def test_crd_watch_refused_is_unknown_not_missing() -> None:
    api = Api()
    crds = RuntimeCrds(api)
    crds.reflectors[CRD].state = State.FORBIDDEN
    rec, store = setup({"runtime": "rayServe", **SIMULATED}, api, crds)
    await rec.handle(KEY)
    assert "apply RayService" in api.wrote and ready(store)["reason"] == "RuntimeNotReady"


async def test_an_unplannable_generation_keeps_the_old_plan_and_says_so() -> None:
    api = Api()
    rec, store = setup({}, api)
    await rec.handle(KEY)
    sizing = store.deployments[KEY]["status"]["sizing"]
    assert sizing["observedGeneration"] == 1
    new_generation(api, store, {"slo": {"ttftP95Ms": 1500, "tpotP95Ms": 5}})
    api.wrote.clear()
    await rec.handle(KEY)
    assert api.wrote == ["status", "create Event"]  # no child touched
    status = store.deployments[KEY]["status"]
    assert status["observedGeneration"] == 2 and status["sizing"] == sizing
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}
    message = ready(store)["message"]
    assert message.startswith("generation 2 cannot be planned: one decode step takes")
    assert message.endswith("; the running children are left as they are and keep serving "
                            "generation 1's plan (status.sizing)")


async def test_an_unplannable_first_generation_mentions_no_old_plan() -> None:
    api = Api()
    rec, store = setup({"slo": {"ttftP95Ms": 1500, "tpotP95Ms": 5}}, api)
    await rec.handle(KEY)
    message = ready(store)["message"]
    assert message.startswith("generation 1 cannot be planned: ")
    assert "status.sizing" not in message and "sizing" not in store.deployments[KEY]["status"]


ROUTER = "http://tierserve-router.tierserve-system.svc:80/v1"


def route(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "LLMRoute",
            "metadata": {"name": "r", "namespace": "ns", "uid": "r-1", "generation": 1,
                         "resourceVersion": "1"}, "spec": spec}


async def test_route_status_says_where_clients_send_which_model_and_writes_it_once() -> None:
    api, store, queue = Api(), Store(), WorkQueue[tuple[str, str]]()
    api.body = route({"model": "chat", "tiers": {"fast": "small", "slow": "big"}})
    store.put_route(copy.deepcopy(api.body), deleted=False)
    routes = RouteReconciler(api, store, queue, lambda: "2026-01-01T00:00:00Z",
                             router_url=ROUTER)
    await routes.handle(("ns", "r"))
    status = store.routes[("ns", "r")]["status"]
    assert (status["endpoint"], status["model"]) == (ROUTER, "chat")
    api.wrote.clear()
    await routes.handle(("ns", "r"))  # unchanged: nothing written
    assert api.wrote == []


def test_route_status_without_a_router_or_with_an_invalid_spec_has_no_endpoint() -> None:
    store = Store()
    plain = route_status(route({"model": "chat", "tiers": {"fast": "a", "slow": "b"}}),
                         store, "2026-01-01T00:00:00Z")
    assert (plain["endpoint"], plain["model"]) == (None, "chat")
    invalid = route_status(route({"model": "chat"}), store, "2026-01-01T00:00:00Z", ROUTER)
    assert invalid["conditions"][0]["reason"] == "InvalidSpec"
    assert (invalid["endpoint"], invalid["model"]) == (None, None)


def test_router_url_must_be_an_http_url() -> None:
    assert OperatorSettings(router_url=ROUTER).router_url == ROUTER
    with pytest.raises(pydantic.ValidationError, match="tierserve-router:80"):
        OperatorSettings(router_url="tierserve-router:80")


def test_the_fixture_is_the_reconcilers() -> None:
    assert DOC["apiVersion"] == API_VERSION and DOC["spec"]["runtime"] == "triton"

"""The reconcilers sort API errors by retry meaning: permanent ones become a condition
and an Event (not a backoff loop), conflicts re-read, transient ones back off."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tierserve.core.builders import BuildSettings
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError
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
KEY = ("ns", "chat")


def status_body(code: int, reason: str, message: str, **details: str) -> str:
    return json.dumps({"kind": "Status", "code": code, "reason": reason, "message": message,
                       "details": details})


class FailingApi(KubeApi):
    """Applies fail with ``error``; status patches and Events succeed and are recorded.
    A KubeApi so mypy holds it to the real signatures; it never connects."""

    def __init__(self, error: ApiError) -> None:
        self.error = error
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        return None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        raise self.error

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        self.statuses.append(status)
        body: dict[str, Any] = copy.deepcopy(DOC)
        body["status"] = status
        body["metadata"]["resourceVersion"] = f"s{len(self.statuses)}"
        return body

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.events.append(manifest)
        return manifest


def _run(error: ApiError) -> tuple[Reconciler, FailingApi, WorkQueue[tuple[str, str]]]:
    api, store, queue = FailingApi(error), Store(), WorkQueue[tuple[str, str]]()
    rec = Reconciler(api, store, KubernetesRealizer(api, store), queue, BuildSettings(),
                     clock=lambda: "T")
    store.put_deployment(copy.deepcopy(DOC), deleted=False)
    return rec, api, queue


@pytest.mark.parametrize(("error", "reason"), [
    (ApiError(403, status_body(403, "Forbidden", 'deployments.apps is forbidden: User '
                               '"system:serviceaccount:x:y" cannot patch')), "Forbidden"),
    (ApiError(404, status_body(404, "NotFound",
                               "the server could not find the requested resource")),
     "KindNotServed"),
    (ApiError(422, status_body(422, "Invalid", "spec.template: Invalid value")), "Rejected"),
])
async def test_permanent_error_is_a_condition_and_one_event_not_a_retry(
        error: ApiError, reason: str) -> None:
    rec, api, queue = _run(error)
    await rec.handle(KEY)
    (written,) = api.statuses
    ready = next(c for c in written["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert error.message in ready["message"]
    (event,) = api.events
    assert (event["type"], event["reason"]) == ("Warning", reason)
    assert queue.retry(KEY) == queue.base_delay  # no failure was counted: no backoff
    queue.drop(KEY)
    await rec.handle(KEY)  # the resync's repeat: same problem, nothing written
    assert len(api.statuses) == 1 and len(api.events) == 1


async def test_missing_object_is_not_reported() -> None:
    rec, api, queue = _run(ApiError(404, status_body(404, "NotFound", '"chat" not found',
                                                     name="chat")))
    await rec.handle(KEY)
    assert api.statuses == [] and api.events == []
    assert queue.retry(KEY) == queue.base_delay
    queue.drop(KEY)


async def test_transient_error_backs_off_and_conflict_does_not() -> None:
    rec, api, queue = _run(ApiError(503, status_body(503, "ServiceUnavailable", "busy")))
    await rec.handle(KEY)
    await rec.handle(KEY)
    assert api.statuses == [] and queue.retry(KEY) == 4 * queue.base_delay  # third failure
    queue.drop(KEY)
    rec, api, queue = _run(ApiError(409, status_body(409, "Conflict", "modified")))
    await rec.handle(KEY)
    await rec.handle(KEY)
    assert api.statuses == [] and queue.retry(KEY) == queue.base_delay
    queue.drop(KEY)

"""Operator internals without a cluster: work queue, status, drift check (the leader
Lease: test_kube_leader.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.kube.client import ApiError
from tierserve.core.sizing import plan
from tierserve.dev.waiting import wait_until_async
from tierserve.operator.realizers import is_subset, unschedulable_message
from tierserve.operator.status import Observed, compute, differs
from tierserve.operator.workqueue import WorkQueue

SPEC = LLMDeploymentSpec.model_validate({
    "model": {"name": "m", "uri": "hf://org/m", "parametersBillions": 8},
    "runtime": "triton", "engine": "vllm", "accelerator": {"type": "H100-SXM"},
    "replicas": 2, "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 50}})
PLAN = plan(SPEC)


async def test_queue_dedups_and_never_runs_a_key_twice_at_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    seen: list[str] = []
    overlap = False
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        nonlocal overlap
        overlap |= key in running
        running.add(key)
        seen.append(key)
        await gate.wait()
        running.discard(key)

    for _ in range(5):
        q.add("a")
    q.add("b")
    task = asyncio.create_task(q.run(handle, workers=4))
    await wait_until_async(lambda: len(seen) == 2, 5, "both keys handled")
    q.add("a")  # arrives while "a" is being handled: re-run once afterwards
    gate.set()
    await wait_until_async(lambda: seen.count("a") == 2 and not q.busy, 5,
                           "the re-added key handled again")
    task.cancel()
    assert sorted(seen) == ["a", "a", "b"] and not overlap


async def test_a_crashing_handler_does_not_kill_the_worker() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01)
    seen: list[str] = []

    async def handle(key: str) -> None:
        seen.append(key)
        if key == "bad" and seen.count("bad") == 1:
            raise RuntimeError("boom")

    q.add("bad")
    q.add("good")
    task = asyncio.create_task(q.run(handle, workers=1))
    await wait_until_async(lambda: seen.count("bad") == 2 and "good" in seen, 5,
                           "the crashed key retried and the next one handled")
    task.cancel()


async def test_queue_backoff_grows_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=4)
    assert [q.retry("k") for _ in range(5)] == [0.5, 1, 2, 4, 4]
    q.forget("k")
    assert q.retry("k") == 0.5
    q.drop("k")


def test_status_ready_and_stable_when_replicas_ready() -> None:
    st = compute(SPEC, PLAN, Observed(2, 2, "http://x"), "sel", 3, {}, "T0")
    ready = {c["type"]: c for c in st["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Ready"]["reason"] == "ReplicasReady"
    assert ready["Progressing"]["status"] == "False"
    assert st["replicasSummary"] == "2/2" and st["observedGeneration"] == 3
    again = compute(SPEC, PLAN, Observed(2, 2, "http://x"), "sel", 3, st, "T1")
    assert not differs(again, st)  # unchanged status: no write, transition time kept


def test_status_unschedulable_is_not_ready_with_scheduler_message() -> None:
    obs = Observed(2, 0, unschedulable="pod x cannot be scheduled: 0/5 nodes are available")
    st = compute(SPEC, PLAN, obs, "sel", 1, {}, "T0")
    cond = {c["type"]: c for c in st["conditions"]}
    assert cond["Ready"]["reason"] == "Unschedulable"
    assert "0/5 nodes" in cond["Ready"]["message"]
    assert cond["Degraded"]["status"] == "True"


def test_unschedulable_message_from_pod_condition() -> None:
    pod = {"metadata": {"name": "p"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 node(s) didn't match selector"}]}}
    assert "didn't match" in (unschedulable_message([pod]) or "")
    assert unschedulable_message([{"metadata": {"name": "q"}, "status": {}}]) is None


def test_is_subset_ignores_server_defaults_but_sees_edits() -> None:
    desired = {"spec": {"replicas": 2, "ports": [{"name": "http", "port": 8000}]}}
    live = {"spec": {"replicas": 2, "ports": [{"name": "http", "port": 8000,
                                               "protocol": "TCP"}], "extra": 1}}
    assert is_subset(desired, live)
    live["spec"]["replicas"] = 5
    assert not is_subset(desired, live)


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_retryable_api_errors(status: int) -> None:
    assert ApiError(status, "").retryable
    assert not ApiError(422, "").retryable


def _route(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "ns", "generation": 2}, "spec": spec}


def test_route_status_reports_missing_and_unready_deployments() -> None:
    from tierserve.operator.routes import route_status
    from tierserve.operator.store import Store

    store = Store()
    body = _route({"model": "chat", "tiers": {"fast": "small", "slow": "big"}})
    ready = route_status(body, store, "T")["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "DeploymentNotFound")
    assert '"small", "big"' in ready["message"]
    for name, ok in (("small", "True"), ("big", "False")):
        store.put_deployment({"metadata": {"name": name, "namespace": "ns"},
                              "status": {"conditions": [{"type": "Ready", "status": ok}]}},
                             deleted=False)
    ready = route_status(body, store, "T")["conditions"][0]
    assert ready["reason"] == "DeploymentsNotReady" and "big" in ready["message"]
    store.deployments[("ns", "big")]["status"]["conditions"][0]["status"] = "True"
    st = route_status(body, store, "T")
    assert st["conditions"][0]["status"] == "True" and st["observedGeneration"] == 2
    body["status"] = st  # recomputing from a written status keeps the transition time
    assert route_status(body, store, "T2")["conditions"][0]["lastTransitionTime"] == "T"
    store.put_route(body, deleted=False)
    assert store.routes_referencing(("ns", "big")) == [("ns", "r")]
    assert store.routes_referencing(("other", "big")) == []

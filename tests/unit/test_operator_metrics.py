"""The operator's own metrics: reconciles and their errors by reason, durations and queue
waits on a fake clock, API writes by verb, the leader gauge and the endpoint serving them."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from tests.unit.test_kube_operator_errors import FailingApi, status_body
from tests.unit.test_reconciler import DOC, FakeApi
from tierserve.core.builders import BuildSettings
from tierserve.core.kube.client import WriteCounter, verb_of
from tierserve.core.kube.errors import ApiError
from tierserve.core.metrics_registry import component_registry
from tierserve.dev.cluster.procs import free_port
from tierserve.operator.metrics import OperatorMetrics, serve
from tierserve.operator.realizers import KubernetesRealizer
from tierserve.operator.reconciler import Reconciler
from tierserve.operator.routes import RouteReconciler
from tierserve.operator.store import Store
from tierserve.operator.workqueue import WorkQueue

KEY = ("ns", "chat")


class Ticks:
    """A monotonic clock that advances ``step`` seconds per reading."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def _reconciler(api: FakeApi | FailingApi, doc: dict[str, Any]
                ) -> tuple[Reconciler, CollectorRegistry]:
    reg, store = CollectorRegistry(), Store()
    rec = Reconciler(api, store, KubernetesRealizer(api, store), WorkQueue(), BuildSettings(),
                     clock=lambda: "T", metrics=OperatorMetrics(reg), timer=Ticks(0.25))
    store.put_deployment(copy.deepcopy(doc), deleted=False)
    return rec, reg


async def test_a_reconcile_is_counted_and_timed() -> None:
    rec, reg = _reconciler(FakeApi(), DOC)
    await rec.handle(KEY)
    ok = {"kind": "deployment", "result": "ok"}
    assert _value(reg, "tierserve_operator_reconciles_total", **ok) == 1
    assert _value(reg, "tierserve_operator_reconciles_total", kind="deployment",
                  result="error") == 0
    duration = "tierserve_operator_reconcile_duration_seconds"
    assert _value(reg, duration + "_count", kind="deployment") == 1
    assert _value(reg, duration + "_sum", kind="deployment") == 0.25  # one tick of the clock
    # the route series exist before any route is reconciled: rate() works from the start
    assert _value(reg, "tierserve_operator_reconciles_total", kind="route", result="ok") == 0


async def test_a_problem_is_an_error_with_its_reason() -> None:
    doc = copy.deepcopy(DOC)
    doc["spec"]["slo"]["tpotP95Ms"] = 0  # below the minimum: InvalidSpec
    rec, reg = _reconciler(FakeApi(), doc)
    await rec.handle(KEY)
    assert _value(reg, "tierserve_operator_reconciles_total", kind="deployment",
                  result="error") == 1
    assert _value(reg, "tierserve_operator_reconcile_errors_total", kind="deployment",
                  reason="InvalidSpec") == 1


async def test_api_errors_are_counted_by_typed_reason() -> None:
    cases = [(ApiError(503, status_body(503, "ServiceUnavailable", "busy")), "Transient"),
             (ApiError(409, status_body(409, "Conflict", "modified")), "Conflict"),
             (ApiError(403, status_body(403, "Forbidden", "no")), "Forbidden")]
    for error, reason in cases:
        rec, reg = _reconciler(FailingApi(error), DOC)
        await rec.handle(KEY)
        rec.queue.drop(KEY)
        assert _value(reg, "tierserve_operator_reconcile_errors_total", kind="deployment",
                      reason=reason) == 1, reason


async def test_route_reconciles_count_a_missing_deployment_but_not_a_wait() -> None:
    reg, store, queue = CollectorRegistry(), Store(), WorkQueue[tuple[str, str]]()
    routes = RouteReconciler(FakeApi(), store, queue, lambda: "T",
                             metrics=OperatorMetrics(reg), timer=Ticks(0.5))
    route = {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
             "metadata": {"name": "r", "namespace": "ns", "generation": 1},
             "spec": {"model": "chat", "tiers": {"fast": "small", "slow": "big"}}}
    store.put_route(route, deleted=False)
    await routes.handle(("ns", "r"))
    errors = "tierserve_operator_reconcile_errors_total"
    assert _value(reg, errors, kind="route", reason="DeploymentNotFound") == 1
    for name in ("small", "big"):  # both exist, neither ready: a wait, not an error
        store.put_deployment({"metadata": {"name": name, "namespace": "ns"}}, deleted=False)
    await routes.handle(("ns", "r"))
    assert _value(reg, "tierserve_operator_reconciles_total", kind="route", result="ok") == 1
    assert _value(reg, errors, kind="route", reason="DeploymentsNotReady") is None
    assert _value(reg, "tierserve_operator_reconcile_duration_seconds_sum", kind="route") == 1.0


async def test_queue_depth_and_wait_on_the_queue_clock() -> None:
    now = [100.0]
    reg, queue = CollectorRegistry(), WorkQueue[str](clock=lambda: now[0])
    OperatorMetrics(reg).bind_queue("deployment", queue)
    queue.add("a")
    queue.add("a")  # deduplicated: one key waiting, its wait counted from the first add
    queue.add("b")
    assert _value(reg, "tierserve_operator_workqueue_depth", kind="deployment") == 2
    now[0] = 102.5
    handled: list[str] = []

    async def handle(key: str) -> None:
        handled.append(key)

    worker = asyncio.create_task(queue.run_worker(handle))
    while len(handled) < 2:
        await asyncio.sleep(0)
    worker.cancel()
    latency = "tierserve_operator_workqueue_latency_seconds"
    assert _value(reg, latency + "_count", kind="deployment") == 2
    assert _value(reg, latency + "_sum", kind="deployment") == 5.0  # 2.5 s each
    assert _value(reg, "tierserve_operator_workqueue_depth", kind="deployment") == 0


def test_writes_are_counted_by_verb() -> None:
    assert [verb_of(m, c) for m, c in (
        ("PATCH", "application/apply-patch+yaml"), ("PATCH", "application/merge-patch+json"),
        ("POST", "application/json"), ("PUT", "application/json"),
        ("DELETE", "application/json"))] == ["apply", "patch", "create", "update", "delete"]
    writes, reg = WriteCounter(), CollectorRegistry()
    metrics = OperatorMetrics(reg)
    metrics.count_writes(writes)
    writes.count("apply")
    writes.count("apply")
    writes.count("patch")
    assert writes.total == 3
    total = "tierserve_operator_api_writes_total"
    assert _value(reg, total, verb="apply") == 2 and _value(reg, total, verb="patch") == 1
    assert _value(reg, total, verb="delete") == 0  # every verb present, so sums never miss


def test_leader_gauge_follows_its_function() -> None:
    reg, leading = CollectorRegistry(), [False]
    OperatorMetrics(reg).leader.set_function(lambda: float(leading[0]))
    assert _value(reg, "tierserve_operator_leader") == 0
    leading[0] = True
    assert _value(reg, "tierserve_operator_leader") == 1


async def test_endpoint_serves_the_registry_with_the_process_collectors() -> None:
    reg, port = component_registry(), free_port()
    OperatorMetrics(reg)
    runner = await serve(reg, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    finally:
        await runner.cleanup()
    for name in ("tierserve_operator_reconciles_total", "tierserve_operator_leader",
                 "process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert f"\n{name}" in text, name

"""The operator's own metrics, on a registry its caller owns, and the endpoint serving it.

* ``tierserve_operator_reconciles_total{kind,result}``: reconciles run (``kind``
  deployment|route, ``result`` ok|error); ``..._reconcile_errors_total{kind,reason}`` the
  errors by reason: the typed API error's (``Conflict``, ``Transient``, ``Forbidden``...),
  the problem's a user can act on (``InvalidSpec``, a sizing reason,
  ``DeploymentNotFound``), or ``Timeout``/``NetworkError``/``UnexpectedError``;
* ``..._reconcile_duration_seconds{kind}``: one reconcile, from reading the store to the
  last write; ``..._workqueue_latency_seconds{kind}``: how long a key waited in the queue
  (queued -> taken by a worker), the part of the delay the reconcile itself does not show;
* ``..._workqueue_depth{kind}``: keys waiting; ``..._leader``: 1 while this replica leads;
* ``..._api_writes_total{verb}``: the client's write calls (read at scrape time from its
  :class:`~tierserve.core.kube.client.WriteCounter`), so zero writes in steady state shows.

The endpoint runs in the operator's event loop (not prometheus_client's server thread):
the deployment-state collector reads the store the loop mutates, and a scrape in the
loop cannot see it half-updated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tierserve.core.kube.client import WriteCounter

KINDS = ("deployment", "route")
VERBS = ("apply", "create", "delete", "patch", "update")
# a reconcile is a few API calls (ms) or a local runtime start (seconds)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0)
# a key waits for a free worker: nothing when idle, seconds under a burst of thousands
LATENCY_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
                   300.0)
P = "tierserve_operator_"


class _Queue(Protocol):
    """What :meth:`OperatorMetrics.bind_queue` needs of a work queue."""

    on_wait: Callable[[float], None]

    def __len__(self) -> int: ...


class ApiWrites(Collector):
    """``tierserve_operator_api_writes_total{verb}`` from a client's write counter (every
    verb present, zero included, so a follower's series exist and read 0)."""

    def __init__(self, writes: WriteCounter) -> None:
        self.writes = writes

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(P + "api_writes", "Write calls to the API server, by verb.",
                                     labels=["verb"])
        counts = self.writes.by_verb
        for verb in sorted({*VERBS, *counts}):
            family.add_metric([verb], counts.get(verb, 0))
        yield family


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconciles = Counter(P + "reconciles", "Reconciles run, by kind and result.",
                                  ["kind", "result"], registry=registry)
        self.errors = Counter(P + "reconcile_errors", "Reconciles that failed, by reason.",
                              ["kind", "reason"], registry=registry)
        self.duration = Histogram(P + "reconcile_duration_seconds", "Time one reconcile took.",
                                  ["kind"], buckets=DURATION_BUCKETS, registry=registry)
        self.latency = Histogram(P + "workqueue_latency_seconds",
                                 "Time a key waited in the work queue (queued to handled).",
                                 ["kind"], buckets=LATENCY_BUCKETS, registry=registry)
        self.depth = Gauge(P + "workqueue_depth", "Keys waiting in the work queue.", ["kind"],
                           registry=registry)
        self.leader = Gauge(P + "leader", "1 while this replica is the leader, else 0.",
                            registry=registry)
        for kind in KINDS:  # rate() and absent() work from the first scrape
            for result in ("ok", "error"):
                self.reconciles.labels(kind, result)
            self.duration.labels(kind)

    def reconciled(self, kind: str, seconds: float, error: str | None) -> None:
        """One reconcile of ``kind`` took ``seconds``; ``error`` is why it failed, or None."""
        self.reconciles.labels(kind, "ok" if error is None else "error").inc()
        if error is not None:
            self.errors.labels(kind, error).inc()
        self.duration.labels(kind).observe(seconds)

    def bind_queue(self, kind: str, queue: _Queue) -> None:
        """Depth read at scrape time; each key's wait observed as a worker takes it."""
        self.depth.labels(kind).set_function(lambda: len(queue))
        queue.on_wait = self.latency.labels(kind).observe

    def count_writes(self, writes: WriteCounter) -> None:
        self.registry.register(ApiWrites(writes))


def _handler(registry: CollectorRegistry
             ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
    return metrics


async def serve(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` in the running loop; the caller cleans the runner up."""
    app = web.Application()
    app.router.add_get("/metrics", _handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

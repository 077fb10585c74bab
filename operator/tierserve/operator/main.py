"""Build the operator's dependencies in one place and run it.

Order: connect -> (optionally) win the leader Lease -> start kopf's watches, the work
queue's workers and the periodic resync. Losing the Lease stops everything and exits
non-zero so the Deployment restarts the pod as a follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.leader import LeaderElector
from tierserve.core.local import LocalRuntimeFactory
from tierserve.operator import handlers
from tierserve.operator.local import LocalRealizer
from tierserve.operator.realizers import KubernetesRealizer, Realizer
from tierserve.operator.reconciler import Reconciler
from tierserve.operator.routes import RouteReconciler
from tierserve.operator.routes import now as route_now
from tierserve.operator.settings import OperatorSettings
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

log = logging.getLogger("tierserve.operator")


def kopf_settings(opts: OperatorSettings) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = False  # we post our own Events, only on real transitions
    s.batching.batch_window = opts.batch_window_seconds
    s.watching.server_timeout = 300
    s.networking.request_timeout = 60
    return s


def _metrics(opts: OperatorSettings, api: KubeApi, queue: WorkQueue[Key],
             reconciler: Reconciler) -> None:
    if opts.metrics_port is None:
        return
    reg = CollectorRegistry()
    Gauge("tierserve_operator_api_writes", "write calls made", registry=reg).set_function(
        lambda: api.writes.total)
    Gauge("tierserve_operator_queue_depth", "keys waiting", registry=reg).set_function(
        lambda: len(queue))
    Gauge("tierserve_operator_reconciles", "reconciles run", registry=reg).set_function(
        lambda: reconciler.reconciles)
    start_http_server(opts.metrics_port, addr=opts.metrics_host, registry=reg)


async def _resync(store: Store, queue: WorkQueue[Key], routes: WorkQueue[Key],
                  every: float) -> None:
    while True:
        await asyncio.sleep(every)
        for key in list(store.deployments):
            queue.add(key)
        for key in list(store.routes):
            routes.add(key)


async def _elect(opts: OperatorSettings) -> LeaderElector | None:
    le = opts.leader_election
    if not le.enabled:
        return None
    elector = LeaderElector(await KubeApi.connect(opts.kubeconfig), le.namespace, le.lease_name,
                            le.identity, le.lease_seconds, le.renew_seconds)
    log.info("waiting for leadership of Lease %s/%s as %s", le.namespace, le.lease_name,
             le.identity)
    await elector.acquire()
    log.info("became leader as %s", le.identity)
    return elector


def _realizer(opts: OperatorSettings, api: KubeApi, store: Store, queue: WorkQueue[Key],
              local_runtimes: LocalRuntimeFactory | None) -> Realizer:
    if opts.target == "local":
        if local_runtimes is None:
            raise ValueError("--target local needs a local runtime (run it as "
                             "`tierserve operator`, which wires in the engine's)")
        loc = opts.local
        return LocalRealizer.create(local_runtimes, loc.workdir, loc.ray_http_port,
                                    loc.ray_num_cpus, queue)
    return KubernetesRealizer(api, store)


async def run(opts: OperatorSettings, local_runtimes: LocalRuntimeFactory | None = None) -> int:
    if opts.kubeconfig:
        os.environ["KUBECONFIG"] = opts.kubeconfig  # kopf's own login reads it
    api = await KubeApi.connect(opts.kubeconfig)
    store, queue = Store(), WorkQueue[Key]()
    realizer = _realizer(opts, api, store, queue, local_runtimes)
    reconciler = Reconciler(api, store, realizer, queue, opts.build)
    _metrics(opts, api, queue, reconciler)  # followers too: they show zero writes
    elector = await _elect(opts)
    registry = kopf.OperatorRegistry()
    route_queue = WorkQueue[Key]()
    routes = RouteReconciler(api, store, route_queue, route_now)
    handlers.register(registry, store, queue, route_queue)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(kopf.operator(
            registry=registry, settings=kopf_settings(opts), standalone=True,
            clusterwide=not opts.namespaces, namespaces=opts.namespaces, stop_flag=stop)),
        asyncio.create_task(queue.run(reconciler.handle, opts.workers)),
        asyncio.create_task(route_queue.run(routes.handle, 2)),
        asyncio.create_task(_resync(store, queue, route_queue, opts.resync_seconds)),
        asyncio.create_task(stop.wait()),
    ]
    if elector is not None:
        tasks.append(asyncio.create_task(elector.hold()))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    code = _exit_code(done, stopped=stop.is_set(), lost=elector is not None and tasks[-1] in done)
    stop.set()
    await _shutdown(tasks)
    for closer in (api.close, realizer.close, *([elector.api.close] if elector else [])):
        await closer()
    return code


def _exit_code(done: set[asyncio.Task[Any]], stopped: bool, lost: bool) -> int:
    """0 for a requested stop (SIGTERM/SIGINT); 1 for lost leadership or a failed task."""
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            log.error("operator task failed", exc_info=t.exception())
    if lost:
        log.error("lost leadership; exiting")
    return 0 if stopped and not lost else 1


async def _shutdown(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t

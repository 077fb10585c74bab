"""Build the operator's dependencies in one place and run it.

Order: load the credentials once (kubeconfig or in-cluster) -> one client -> (optionally)
win the leader Lease -> start the reflectors, kopf (login from the same credentials,
liveness probe), the work queues' workers (once every reflector has listed) and the
periodic resync. Losing the Lease stops everything and exits non-zero so the Deployment
restarts the pod as a follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import kopf
from aiohttp import web

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials, CredentialsError
from tierserve.core.kube.leader import LeaderElector
from tierserve.core.kube.reflector import Reflector, run_all, wait_synced
from tierserve.core.local import LocalRuntimeFactory
from tierserve.core.metrics_registry import component_registry
from tierserve.operator import handlers
from tierserve.operator.crds import RuntimeCrds
from tierserve.operator.local import LocalRealizer
from tierserve.operator.metrics import OperatorMetrics, serve
from tierserve.operator.realizers import KubernetesRealizer, Realizer
from tierserve.operator.reconciler import Reconciler
from tierserve.operator.routes import RouteReconciler
from tierserve.operator.routes import now as route_now
from tierserve.operator.settings import OperatorSettings
from tierserve.operator.state_metrics import StateCollector
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

log = logging.getLogger("tierserve.operator")


def kopf_settings(opts: OperatorSettings) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = False  # we post our own Events, only on real transitions
    s.scanning.disabled = True  # kopf watches nothing (no CRD or namespace watches)
    s.networking.request_timeout = 60
    return s


async def _metrics(opts: OperatorSettings, api: KubeApi, store: Store,
                   metrics: OperatorMetrics) -> web.AppRunner | None:
    """The operator's metrics and the deployment-state collector, served in this loop.
    Followers list nothing before they lead, so only the leader exports deployment state."""
    metrics.count_writes(api.writes)
    metrics.registry.register(StateCollector(store))
    if opts.metrics_port is None:
        return None
    return await serve(metrics.registry, opts.metrics_host, opts.metrics_port)


async def _resync(store: Store, queue: WorkQueue[Key], routes: WorkQueue[Key],
                  every: float) -> None:
    while True:
        await asyncio.sleep(every)
        for key in list(store.deployments):
            queue.add(key)
        for key in list(store.routes):
            routes.add(key)


async def _elect(opts: OperatorSettings, api: KubeApi,
                 metrics: OperatorMetrics) -> LeaderElector | None:
    le = opts.leader_election
    if not le.enabled:
        metrics.leader.set(1)  # the only replica acts: it leads
        return None
    elector = LeaderElector(api.view(), le.namespace, le.lease_name, le.identity,
                            le.lease_seconds, le.renew_seconds)
    log.info("waiting for leadership of Lease %s/%s as %s", le.namespace, le.lease_name,
             le.identity)
    await elector.acquire()
    metrics.leader.set(1)
    log.info("became leader as %s", le.identity)
    return elector


def _realizer(opts: OperatorSettings, api: KubeApi, store: Store, queue: WorkQueue[Key],
              local_runtimes: LocalRuntimeFactory | None, crds: RuntimeCrds | None) -> Realizer:
    if opts.target == "local":
        if local_runtimes is None:
            raise ValueError("--target local needs a local runtime (run it as "
                             "`tierserve operator`, which wires in the engine's)")
        loc = opts.local
        return LocalRealizer.create(local_runtimes, loc.workdir, loc.ray_http_port,
                                    loc.ray_num_cpus, queue)
    return KubernetesRealizer(api, store, crds)


async def _work(reflectors: list[Reflector], queue: WorkQueue[Key], routes: WorkQueue[Key],
                reconciler: Reconciler, route_reconciler: RouteReconciler,
                workers: int) -> None:
    """Workers start once every reflector has listed: a reconcile on a partial view would
    re-apply children that exist."""
    await wait_synced(reflectors)
    log.info("watches synced: %s", ", ".join(f"{r.resource} ({r.state.value})"
                                            for r in reflectors))
    await asyncio.gather(queue.run(reconciler.handle, workers),
                         routes.run(route_reconciler.handle, 2))


def _liveness(opts: OperatorSettings) -> str | None:
    port = opts.liveness_port
    return None if port is None else f"http://{opts.metrics_host}:{port}/healthz"


async def run(opts: OperatorSettings, local_runtimes: LocalRuntimeFactory | None = None) -> int:
    try:
        credentials = await Credentials.load(opts.kubeconfig)  # the one client configuration
    except CredentialsError as exc:
        log.error("cannot reach a cluster: %s", exc)
        return 2
    api = await KubeApi.connect(credentials=credentials)
    store, queue, route_queue = Store(), WorkQueue[Key](), WorkQueue[Key]()
    metrics = OperatorMetrics(component_registry())
    metrics.bind_queue("deployment", queue)
    metrics.bind_queue("route", route_queue)
    # the runtimes' CRDs matter only where children are Kubernetes objects
    crds = RuntimeCrds(api) if opts.target == "kubernetes" else None
    realizer = _realizer(opts, api, store, queue, local_runtimes, crds)
    reconciler = Reconciler(api, store, realizer, queue, opts.build, metrics=metrics)
    server = await _metrics(opts, api, store, metrics)  # followers too: zero writes, leader 0
    elector = await _elect(opts, api, metrics)
    routes = RouteReconciler(api, store, route_queue, route_now, metrics=metrics)
    reflectors = handlers.reflectors(api, store, queue, route_queue, opts.namespaces, crds)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, credentials, reflectors, queue)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(kopf.operator(
            registry=registry, settings=kopf_settings(opts), standalone=True,
            clusterwide=not opts.namespaces, namespaces=opts.namespaces, stop_flag=stop,
            liveness_endpoint=_liveness(opts))),
        asyncio.create_task(run_all(reflectors)),
        asyncio.create_task(_work(reflectors, queue, route_queue, reconciler, routes,
                                  opts.workers)),
        asyncio.create_task(_resync(store, queue, route_queue, opts.resync_seconds)),
        asyncio.create_task(stop.wait()),
    ]
    if elector is not None:
        tasks.append(asyncio.create_task(elector.hold()))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    code = _exit_code(done, stopped=stop.is_set(), lost=elector is not None and tasks[-1] in done)
    stop.set()
    await _shutdown(tasks)
    for closer in (realizer.close, api.close, *([server.cleanup] if server else [])):
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

"""Build the operator's dependencies in one place and run it.

Order: load the credentials once (kubeconfig or in-cluster) -> one client -> the health
endpoints and the reflectors (followers too: warm caches, readiness) -> (optionally) win
the leader Lease -> kopf (login from the same credentials), the work queues' workers
(once every reflector has listed) and the periodic resync. Losing the Lease stops
everything and exits non-zero so the Deployment restarts the pod as a follower; a
SIGTERM stops the workers, then releases the Lease so the next replica takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

import kopf
from aiohttp import web

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials, CredentialsError
from tierserve.core.kube.leader import LeaderElector
from tierserve.core.kube.reflector import Reflector, run_all, wait_synced
from tierserve.core.local import LocalRuntimeFactory
from tierserve.core.metrics_registry import component_registry
from tierserve.operator import handlers, health
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
                   metrics: OperatorMetrics, leading: Callable[[], bool],
                   ) -> web.AppRunner | None:
    """The operator's metrics and the deployment-state collector, served in this loop.
    Only the leader exports the deployment state: followers' caches are warm too, and two
    replicas' series would double every sum (accelerators, cost)."""
    metrics.count_writes(api.writes)
    metrics.leader.set_function(lambda: float(leading()))
    metrics.registry.register(StateCollector(store, leading, opts.build))
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


def _elector(opts: OperatorSettings, api: KubeApi) -> LeaderElector | None:
    le = opts.leader_election
    if not le.enabled:
        return None
    return LeaderElector(api.view(), le.namespace, le.lease_name, le.identity, le.timing())


async def _lead(opts: OperatorSettings, elector: LeaderElector, stop: asyncio.Event) -> bool:
    """Wait for the Lease; False when stopped first (SIGTERM while following)."""
    le = opts.leader_election
    log.info("waiting for leadership of Lease %s/%s as %s", le.namespace, le.lease_name,
             le.identity)
    acquiring = asyncio.create_task(elector.acquire())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((acquiring, stopping), return_when=asyncio.FIRST_COMPLETED)
    await _shutdown([stopping, *([] if acquiring.done() else [acquiring])])
    if acquiring.cancelled() or acquiring.exception() is not None:
        return False
    log.info("became leader as %s", le.identity)
    return True


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


async def _serve_health(opts: OperatorSettings, reflectors: list[Reflector],
                        elector: LeaderElector | None, queue: WorkQueue[Key],
                        ) -> web.AppRunner | None:
    if opts.health_port is None:
        return None
    probes = health.Health(reflectors, lambda: elector is None or elector.leading,
                           lambda: len(queue))
    return await health.serve(probes, opts.metrics_host, opts.health_port)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


async def run(opts: OperatorSettings, local_runtimes: LocalRuntimeFactory | None = None) -> int:
    try:  # the one client configuration
        credentials = await Credentials.load(opts.kubeconfig, opts.in_cluster)
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
    routes = RouteReconciler(api, store, route_queue, route_now, metrics=metrics,
                             router_url=opts.router_url)
    reflectors = handlers.reflectors(api, store, queue, route_queue, opts.namespaces, crds)
    elector, stop = _elector(opts, api), _stop_on_signals()
    runners = [r for r in (await _metrics(opts, api, store, metrics,  # followers too
                                          lambda: elector is None or elector.leading),
                           await _serve_health(opts, reflectors, elector, queue)) if r]
    watching = asyncio.create_task(run_all(reflectors))  # read-only: followers too
    try:
        if elector is not None and not await _lead(opts, elector, stop):
            return 0
        return await _operate(opts, credentials, reflectors, (queue, route_queue),
                              (reconciler, routes), elector, stop)
    finally:
        await _shutdown([watching])
        if elector is not None:
            await elector.release()  # after the workers stopped: nothing acts once it is free
        for closer in (*(r.cleanup for r in runners), realizer.close, api.close):
            await closer()


async def _operate(opts: OperatorSettings, credentials: Credentials,
                   reflectors: list[Reflector], queues: tuple[WorkQueue[Key], WorkQueue[Key]],
                   reconcilers: tuple[Reconciler, RouteReconciler],
                   elector: LeaderElector | None, stop: asyncio.Event) -> int:
    """Lead until stopped, until the Lease is lost, or until a task fails."""
    (queue, route_queue), (reconciler, routes) = queues, reconcilers
    registry = kopf.OperatorRegistry()
    handlers.register(registry, credentials)
    tasks = [
        asyncio.create_task(kopf.operator(
            registry=registry, settings=kopf_settings(opts), standalone=True,
            clusterwide=not opts.namespaces, namespaces=opts.namespaces, stop_flag=stop)),
        asyncio.create_task(_work(reflectors, queue, route_queue, reconciler, routes,
                                  opts.workers)),
        asyncio.create_task(_resync(routes.store, queue, route_queue, opts.resync_seconds)),
        asyncio.create_task(stop.wait()),
    ]
    if elector is not None:
        tasks.append(asyncio.create_task(elector.hold()))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    # kopf installs its own SIGTERM/SIGINT handlers (replacing ours) and returns on them
    kopf_stopped = tasks[0] in done and not tasks[0].cancelled() and not tasks[0].exception()
    code = _exit_code(done, stopped=stop.is_set() or kopf_stopped,
                      lost=elector is not None and tasks[-1] in done)
    stop.set()
    await _shutdown(tasks)
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

"""``tierserve router (--config FILE | --kubernetes [--kubeconfig F | --in-cluster]
[--namespace NS] [--api-keys-secret NS/NAME]) --port PORT [--host 127.0.0.1]``.

``--config`` reads a YAML file and reloads it when it changes; ``--kubernetes`` takes
routes from LLMRoute/LLMDeployment objects and EndpointSlices (:mod:`tierserve.routing.
cluster`) in one namespace or, without ``--namespace``, all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierserve.core.cliflags import add_cluster_access, add_log_level, uses_cluster_access
from tierserve.core.routerconfig import ConfigError, RouterConfig, load_config
from tierserve.routing.app import Router, collect_on_growth, create_app, tune_gc
from tierserve.routing.reload import FileWatcher

if TYPE_CHECKING:
    from tierserve.routing.cluster import KubeScaleSignal
    from tierserve.routing.replicas import RouterService

Source = Callable[[], Coroutine[Any, Any, None]]  # what keeps the config current


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("router", help="run the OpenAI-compatible router",
                       description="Run the OpenAI-compatible router, configured from a "
                       "file or from the cluster's LLMRoute and LLMDeployment objects.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="router YAML (docs/router.md)")
    source.add_argument("--kubernetes", action="store_true",
                        help="routes from LLMRoute/LLMDeployment objects (watched)")
    add_cluster_access(p, "with --kubernetes only; with neither flag: the pod's "
                       "ServiceAccount when running in a pod, else $KUBECONFIG, else "
                       "~/.kube/config")
    p.add_argument("--namespace", help="with --kubernetes: watch one namespace (default: all)")
    p.add_argument("--api-keys-secret", metavar="NAMESPACE/NAME",
                   help="with --kubernetes: API keys from this Secret (watched; each data "
                   "entry is one key, the entry name its name; docs/router.md)")
    p.add_argument("--router-service", metavar="NAMESPACE/NAME",
                   help="with --kubernetes: this router's own Service, whose ready endpoints "
                   "are its replicas: one of them, elected with the Lease NAME-ab-writer, "
                   "writes status.ab from all replicas' statistics, and each enforces its "
                   "share of every API key's limits (docs/router.md)")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default: "
                   "%(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: "
                   "%(default)s)")
    p.add_argument("--reload-interval-s", type=float, default=1.0,
                   help="with --config: seconds between file checks (SIGHUP reloads at once)")
    add_log_level(p)
    p.add_argument("--drain-s", type=float, default=30.0,
                   help="after SIGTERM the router stops accepting and lets requests in "
                   "flight (streams) run this long before it exits (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.kubernetes and (uses_cluster_access(args) or args.namespace
                                or args.api_keys_secret or args.router_service):
        print("error: --kubeconfig, --in-cluster, --namespace, --api-keys-secret and "
              "--router-service need --kubernetes", file=sys.stderr)
        return 2
    try:
        service = _router_service(args.router_service)
    except ValueError as exc:
        print(f"error: --router-service: {exc}", file=sys.stderr)
        return 2
    secret = _secret_ref(args.api_keys_secret)
    if args.api_keys_secret and secret is None:
        print("error: --api-keys-secret must be NAMESPACE/NAME", file=sys.stderr)
        return 2
    try:
        config = RouterConfig() if args.kubernetes else load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # uvloop is optional on platforms without it
        pass
    if args.kubernetes:
        from tierserve.routing.cluster import KubeScaleSignal

        wake = KubeScaleSignal()
        router = Router(config, scale_signal=wake)
        source = _cluster_source(router, wake, args, secret, service)
    else:
        router = Router(config)
        source = FileWatcher(args.config, router, args.reload_interval_s).run
    return asyncio.run(_serve(source=source, router=router, host=args.host, port=args.port,
                              drain_s=args.drain_s))


def _secret_ref(value: str | None) -> tuple[str, str] | None:
    """``NAMESPACE/NAME`` -> the pair; ``None`` when absent or malformed."""
    namespace, sep, name = (value or "").partition("/")
    if not sep or not namespace or not name or "/" in name:
        return None
    return namespace, name


def _router_service(value: str | None) -> RouterService | None:
    if value is None:
        return None
    from tierserve.routing.replicas import RouterService

    return RouterService.parse(value)


def _cluster_source(router: Router, wake: KubeScaleSignal, args: argparse.Namespace,
                    secret: tuple[str, str] | None, service: RouterService | None) -> Source:
    """The cluster watcher, connected inside the event loop it runs on."""
    async def run() -> None:
        from tierserve.core.kube.client import KubeApi
        from tierserve.core.kube.credentials import Credentials
        from tierserve.routing.cluster import ClusterSource
        from tierserve.routing.replicas import RouterReplicas

        credentials = await Credentials.load(args.kubeconfig, args.in_cluster)
        api = await KubeApi.connect(credentials=credentials)
        wake.api = api
        replicas = None if service is None else RouterReplicas(api, service)
        try:
            await ClusterSource(api, router, args.namespace, api_keys_secret=secret,
                                replicas=replicas).run()
        finally:
            await api.close()
    return run


async def _serve(*, source: Source, router: Router, host: str, port: int,
                 drain_s: float = 30.0) -> int:
    """Serve until SIGTERM/SIGINT, or until the config source fails (exit status 1)."""
    app = create_app(router)
    await app.start(host, port, backlog=4096)
    tune_gc()
    collector = asyncio.create_task(collect_on_growth())
    logging.getLogger(__name__).info("router listening on http://%s:%d", host, port)
    watcher = asyncio.create_task(source())
    stop = asyncio.Event()
    watcher.add_done_callback(lambda _task: stop.set())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()  # then drain: cleanup lets in-flight requests finish
    finally:
        watcher.cancel()
        collector.cancel()
        (failure, _) = await asyncio.gather(watcher, collector, return_exceptions=True)
        await app.stop(timeout_s=drain_s)
    if isinstance(failure, Exception):
        logging.getLogger(__name__).error("config source failed: %r", failure)
        return 1
    return 0

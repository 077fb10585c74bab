"""``tierserve operator``: run the operator against a cluster or the local machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from tierserve.core.local import LocalRuntimeFactory
from tierserve.operator.settings import LeaderElection, LocalTarget, OperatorSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             local_runtimes: LocalRuntimeFactory | None = None) -> None:
    """``local_runtimes`` serves ``--target local`` (the composition root passes the
    engine's); without it only ``--target kubernetes`` runs."""
    p = sub.add_parser("operator", help="run the Tierserve operator")
    p.add_argument("--target", choices=["kubernetes", "local"], default="kubernetes",
                   help="realize LLMDeployments as Kubernetes children or as local processes")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    p.add_argument("-n", "--namespace", action="append", default=[],
                   help="namespace to watch (repeatable; default: all)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--liveness-port", type=int,
                   help="serve the liveness probe at /healthz on this port (metrics host)")
    p.add_argument("--resync-seconds", type=float, default=300.0,
                   help="re-check every object this often (drift the watches missed)")
    p.add_argument("--no-leader-elect", action="store_true",
                   help="skip the Lease (single replica, or tests)")
    p.add_argument("--lease-namespace", default=None)
    p.add_argument("--lease-name", default=None)
    p.add_argument("--identity", default=None, help="leader-election identity")
    p.add_argument("--local-workdir", type=Path, help="--target local: state directory")
    p.add_argument("--local-ray-port", type=int, default=8000,
                   help="--target local: Ray Serve HTTP port")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run, local_runtimes=local_runtimes)


def _settings(args: argparse.Namespace) -> OperatorSettings:
    le: dict[str, object] = {"enabled": not args.no_leader_elect}
    if args.lease_namespace:
        le["namespace"] = args.lease_namespace
    if args.lease_name:
        le["lease_name"] = args.lease_name
    if args.identity:
        le["identity"] = args.identity
    local: dict[str, object] = {"ray_http_port": args.local_ray_port}
    if args.local_workdir:
        local["workdir"] = args.local_workdir
    return OperatorSettings(
        local=LocalTarget.model_validate(local),
        target=args.target, kubeconfig=args.kubeconfig, namespaces=args.namespace,
        workers=args.workers, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        liveness_port=args.liveness_port,
        resync_seconds=args.resync_seconds,
        leader_election=LeaderElection.model_validate(le),
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.WARNING)
    from tierserve.operator.main import run as run_operator

    try:
        import uvloop

        return uvloop.run(run_operator(_settings(args), args.local_runtimes))
    except ImportError:
        return asyncio.run(run_operator(_settings(args), args.local_runtimes))

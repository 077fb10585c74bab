"""``tierserve operator``: run the operator against a cluster or the local machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from tierserve.core.cliflags import (
    add_build_settings,
    add_cluster_access,
    add_log_level,
    build_settings,
)
from tierserve.core.local import LocalRuntimeFactory
from tierserve.operator.settings import LeaderElection, LocalTarget, OperatorSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             local_runtimes: LocalRuntimeFactory | None = None) -> None:
    """``local_runtimes`` serves ``--target local`` (the composition root passes the
    engine's); without it only ``--target kubernetes`` runs."""
    p = sub.add_parser("operator", help="run the Tierserve operator",
                       description="Run the Tierserve operator: reconcile LLMDeployments "
                       "and LLMRoutes into runtime children.")
    p.add_argument("--target", choices=["kubernetes", "local"], default="kubernetes",
                   help="realize LLMDeployments as Kubernetes children or as local processes")
    add_cluster_access(p)
    p.add_argument("-n", "--namespace", action="append", default=[],
                   help="namespace to watch (repeatable; default: all)")
    p.add_argument("--workers", type=int, default=16,
                   help="LLMDeployments reconciled at once (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics and health ports bind to (default: %(default)s)")
    p.add_argument("--health-port", type=int,
                   help="serve the probes on this port: /healthz (the event loop answers) "
                   "and /readyz (every watch has listed)")
    p.add_argument("--router-url",
                   help="the router's OpenAI base URL that LLMRoute status.endpoint reports, "
                   "e.g. http://tierserve-router.tierserve-system.svc:80/v1 (the chart sets "
                   "its router Service; default: not reported)")
    p.add_argument("--resync-s", type=float, default=300.0,
                   help="re-check every object this often (drift the watches missed)")
    _leader_flags(p)
    p.add_argument("--local-workdir", type=Path, help="--target local: state directory")
    p.add_argument("--local-ray-port", type=int, default=8000,
                   help="--target local: Ray Serve HTTP port")
    add_build_settings(p)
    add_log_level(p)
    p.set_defaults(func=run, local_runtimes=local_runtimes)


def _leader_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("leader election", "a Lease lets one replica act at a time; "
                             "durations as in client-go (core/kube/leader.py)")
    g.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="hold a Lease before acting (off: single replica, or tests)")
    g.add_argument("--lease-namespace", help="the Lease's namespace (default: $POD_NAMESPACE, "
                   "else default)")
    g.add_argument("--lease-name", help="the Lease's name (default: tierserve-operator)")
    g.add_argument("--identity", help="this candidate's name in the Lease (default: "
                   "hostname-pid)")
    g.add_argument("--lease-duration-s", type=float, default=15.0,
                   help="followers take over this long after they last saw the Lease "
                   "change (default: %(default)s)")
    g.add_argument("--renew-deadline-s", type=float, default=10.0,
                   help="the leader steps down after failing to renew for this long "
                   "(default: %(default)s)")
    g.add_argument("--retry-period-s", type=float, default=2.0,
                   help="time between renewals and acquisition attempts (default: "
                   "%(default)s)")


def _settings(args: argparse.Namespace) -> OperatorSettings:
    le: dict[str, object] = {"enabled": args.leader_elect,
                             "lease_duration_s": args.lease_duration_s,
                             "renew_deadline_s": args.renew_deadline_s,
                             "retry_period_s": args.retry_period_s}
    for flag, name in (("lease_namespace", "namespace"), ("lease_name", "lease_name"),
                       ("identity", "identity")):
        if getattr(args, flag):
            le[name] = getattr(args, flag)
    local: dict[str, object] = {"ray_http_port": args.local_ray_port}
    if args.local_workdir:
        local["workdir"] = args.local_workdir
    return OperatorSettings(
        local=LocalTarget.model_validate(local),
        target=args.target, kubeconfig=args.kubeconfig, in_cluster=args.in_cluster,
        namespaces=args.namespace, workers=args.workers, metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, health_port=args.health_port,
        resync_seconds=args.resync_s, router_url=args.router_url,
        leader_election=LeaderElection.model_validate(le),
        build=build_settings(args),
    )


def run(args: argparse.Namespace) -> int:
    # kopf's INFO lines repeat what our own log says
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLogger().level))
    from tierserve.operator.main import run as run_operator

    try:
        settings = _settings(args)
    except ValueError as exc:  # pydantic's ValidationError is one
        print(f"tierserve operator: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        return uvloop.run(run_operator(settings, args.local_runtimes))
    except ImportError:
        return asyncio.run(run_operator(settings, args.local_runtimes))

"""``tierserve-dev cluster build|up|down|status|env``: the local dev control plane.

Examples::

    tierserve-dev cluster build          # compile pinned binaries into ~/.cache/tierserve/bin
    tierserve-dev cluster up             # start it; prints the kubeconfig path
    eval "$(tierserve-dev cluster env)"  # KUBECONFIG and PATH (helm, kwok, servers)
    tierserve-dev cluster status
    tierserve-dev cluster down
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tierserve.dev.cluster import build, cluster, paths
from tierserve.dev.cluster.health import KubectlError
from tierserve.dev.cluster.procs import WaitTimeout


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _options(args: argparse.Namespace) -> cluster.Options:
    state = Path(args.state_dir) if args.state_dir else None
    return cluster.Options(name=args.name, state=state, log=_log,
                           cpu_nodes=getattr(args, "cpu_nodes", 2),
                           timeout=getattr(args, "timeout", 90.0))


def _build(args: argparse.Namespace) -> int:
    try:
        for item in build.ensure_built(_log):
            print(f"{item.name} {item.version} {item.path}")
    except build.BuildUnavailable as exc:
        # Without Go the cluster tests skip (with this reason); CI must never skip them.
        _log(f"cannot build cluster binaries: {exc}")
        return 3 if os.environ.get("CI") else 0
    return 0


def _up(args: argparse.Namespace) -> int:
    try:
        lay = cluster.up(_options(args))
    except (cluster.ClusterError, build.BuildUnavailable, build.BuildFailed, KubectlError,
            WaitTimeout) as exc:
        _log(str(exc))
        return 1
    print(lay.kubeconfig())
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = cluster.down(_options(args))
    _log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    lay = cluster.load(_options(args).state_dir)
    if lay is None:
        print(f"cluster {args.name!r}: not created")
        return 1
    states = cluster.component_status(lay)
    print(f"cluster {args.name!r}: {lay.server} kubeconfig {lay.kubeconfig()}")
    for name, state in states.items():
        print(f"  {name:<24} {state}")
    if states["kube-apiserver"] == "healthy":
        print(f"  {cluster.node_summary(lay)}")
    return 0 if all(s == "healthy" for s in states.values()) else 1


def _env(args: argparse.Namespace) -> int:
    lay = cluster.load(_options(args).state_dir)
    if lay is None:
        _log(f"cluster {args.name!r} is not up; run `tierserve-dev cluster up`")
        return 1
    print("\n".join(cluster.env_lines(lay)))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="dev", help="cluster name (default: dev)")
    parser.add_argument("--state-dir", default=None,
                        help=f"state directory (default: $TIERSERVE_CLUSTER_DIR or "
                             f"{paths.cache_root() / 'cluster' / '<name>'})")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cluster", help="local Kubernetes control plane (kwok nodes)",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    sub.add_parser("build", help="build the pinned binaries (cached)").set_defaults(func=_build)
    up = sub.add_parser("up", help="start the cluster (idempotent)")
    _common(up)
    up.add_argument("--cpu-nodes", type=int, default=2, help="CPU-only nodes (default: 2)")
    up.add_argument("--timeout", type=float, default=90.0, help="per-step timeout seconds")
    up.set_defaults(func=_up)
    for name, func, text in (("down", _down, "stop every process and remove state"),
                             ("status", _status, "report component health"),
                             ("env", _env, "print export lines for KUBECONFIG and PATH")):
        _common(action := sub.add_parser(name, help=text))
        action.set_defaults(func=func)

"""``tierserve-dev demo``: the main job, end to end on this machine (``make demo``).

A local control plane (real kube-apiserver, kwok nodes), Tierserve installed by its Helm
chart with default values, the chart's components run here as processes (the operator's
local target serves the real CPU models of ``examples/``; the router and the SLO
autoscaler run against the cluster), Prometheus with the chart's rules; then traffic
through the router (steady, a burst that makes the autoscaler add a replica, an idle
tail that takes it away again) with a live view, and at the end ``kubectl get llm``, a
summary, a timeline picture and dashboard snapshots in ``demo-output/``.

Modules: :mod:`.run` (the steps), :mod:`.stack` (the processes), :mod:`.traffic`,
:mod:`.progress` and :mod:`.report`. ``tierserve-dev demo stop`` stops what a ``--keep``
run left up.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="serve the example models on a local cluster, drive "
                       "traffic, autoscale and report (make demo)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo-output"),
                   help="where logs, the summary, the timeline and the dashboard snapshots "
                   "go (default: demo-output/)")
    p.add_argument("--keep", action="store_true",
                   help="leave the cluster and every component running at the end (also on "
                   "failure); `tierserve-dev demo stop` stops them")
    p.add_argument("--short", action="store_true",
                   help="shorter phases (the e2e test's run: same steps)")
    p.add_argument("--name", default="demo", help="the local cluster's name (default: demo)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="the cluster's state directory (default: ~/.cache/tierserve/"
                   "cluster/<name>)")
    p.add_argument("--ready-timeout-s", type=float, default=600.0,
                   help="how long the models may take to become Ready (default: 600)")
    actions = p.add_subparsers(dest="action", metavar="{stop}")
    stop = actions.add_parser("stop", help="stop what `demo --keep` left running")
    stop.add_argument("--out", type=Path, default=Path("demo-output"), dest="stop_out",
                      help="the kept run's output directory (default: demo-output/)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from tierserve.dev.demo.run import Options, main, stop

    if args.action == "stop":
        return stop(args.stop_out)
    return main(Options(out=args.out, keep=args.keep, short=args.short,
                                name=args.name, state_dir=args.state_dir,
                                ready_timeout_s=args.ready_timeout_s))

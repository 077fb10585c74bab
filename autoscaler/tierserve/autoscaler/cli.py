"""``tierserve autoscaler``: the live loop, advisory (dry-run) by default.

Without ``--kubeconfig``/``--in-cluster`` the decisions are printed, one JSON line each,
and nothing is changed: the advisory mode people ask autoscalers for (dynamo PR #8114).
With them, decisions go through the LLMDeployment scale subresource
(:class:`tierserve.core.kube.scale.KubeScaleWriter`), with an Event per change and the
observed SLO block in ``status.slo``.

Targets come from a YAML/JSON file (a list of :class:`ScaleTarget` documents), from
flags for a single deployment, or, with ``--kubeconfig``/``--in-cluster`` and no
``--targets``, from the cluster itself: every LLMDeployment with autoscaling enabled
(:mod:`tierserve.autoscaler.discovery`, watched by
:mod:`tierserve.autoscaler.watch`), in ``--namespace`` or all namespaces.

Metrics come from Prometheus (``--prometheus-url``) or, without it, from the engines
themselves: the ``--scrape`` URLs, the targets' ``endpoints``, or for discovered targets
each deployment's engine pods (the chart's default, so that it runs without a Prometheus).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from tierserve.autoscaler.controller import (
    Controller,
    EventSink,
    MetricsSource,
    ScaleTarget,
    ScaleWriter,
)
from tierserve.autoscaler.discovery import Discovery, DiscoveryOptions
from tierserve.autoscaler.policy import parse_knobs
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import ReplicaCapacity
from tierserve.core.cliflags import add_cluster_access, add_log_level, uses_cluster_access


class Writer(ScaleWriter, EventSink, Protocol):
    """What the live loop writes through: the scale subresource, status and Events."""


class AdvisoryWriter:
    """Prints decisions; ``spec`` replicas follow the advice so the loop stays coherent."""

    def __init__(self, replicas: int, out: Any = None) -> None:
        self.replicas: dict[tuple[str, str], int] = {}
        self.default, self.out = replicas, out or sys.stdout

    def _emit(self, **fields: Any) -> None:
        print(json.dumps({"time": round(time.time(), 3), **fields}), file=self.out, flush=True)

    async def get_scale(self, ns: str, name: str) -> tuple[int, int]:
        n = self.replicas.get((ns, name), self.default)
        return n, n

    async def set_scale(self, ns: str, name: str, replicas: int, reason: str) -> None:
        self.replicas[(ns, name)] = replicas
        self._emit(event="advice", deployment=f"{ns}/{name}", replicas=replicas, reason=reason)

    async def record_status(self, ns: str, name: str, observed: dict[str, Any]) -> None:
        self._emit(event="observed", deployment=f"{ns}/{name}", **observed)

    async def event(self, ns: str, name: str, reason: str, message: str,
                    warning: bool) -> None:
        self._emit(event="event", deployment=f"{ns}/{name}", reason=reason, message=message,
                   warning=warning)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("autoscaler", help="run the SLO autoscaler (advisory by default)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prometheus-url",
                     help="Prometheus base URL (HTTP API); without it the engines' /metrics "
                          "are scraped directly")
    src.add_argument("--scrape", nargs="+", metavar="URL",
                     help="engine /metrics URLs of the one flags-mode deployment")
    p.add_argument("--targets", type=Path, help="YAML/JSON list of ScaleTarget documents")
    p.add_argument("--namespace", default=None,
                   help="discovery: only this namespace (default: all); flags mode: the "
                        "deployment's namespace (default: default)")
    p.add_argument("--name", default="llm",
                   help="flags mode: the LLMDeployment's name (default: %(default)s)")
    p.add_argument("--slo-ttft-ms", type=float, default=2500.0,
                   help="flags mode: p95 time-to-first-token target (default: %(default)s)")
    p.add_argument("--slo-tpot-ms", type=float, default=100.0,
                   help="flags mode: p95 time-per-output-token target (default: %(default)s)")
    p.add_argument("--max-concurrency", type=float, default=32.0,
                   help="flags mode: requests one replica runs at once within the TPOT "
                   "target (default: %(default)s)")
    p.add_argument("--decode-tokens-per-s", type=float, default=1000.0,
                   help="flags mode: one replica's decode throughput (default: %(default)s)")
    p.add_argument("--prefill-tokens-per-s", type=float, default=5000.0,
                   help="flags mode: one replica's prefill throughput (default: %(default)s)")
    p.add_argument("--usable-fraction", type=float, default=1.0,
                   help="flags mode: share of a replica's capacity to plan with "
                   "(default: %(default)s)")
    p.add_argument("--decode-step-ms", type=float, default=None,
                   help="flags mode: one decode step with one running sequence, ms; "
                   "enables the TPOT-tail floor (prefill collisions) (default: off)")
    p.add_argument("--min-replicas", type=int, default=1,
                   help="flags mode: never fewer replicas (default: %(default)s)")
    p.add_argument("--max-replicas", type=int, default=16,
                   help="flags mode: never more replicas (default: %(default)s)")
    p.add_argument("--cold-start-s", type=float, default=60.0,
                   help="how long a new replica takes to serve; discovered deployments "
                   "without one use this (default: %(default)s)")
    p.add_argument("--replicas", type=int, default=1, help="advisory mode: starting count")
    p.add_argument("--interval-s", type=float, default=10.0,
                   help="seconds between decision rounds (default: %(default)s)")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    add_cluster_access(p, "decisions go to the cluster (scale subresource, Events, "
                       "status.slo) with either flag; with neither, advisory: decisions "
                       "are printed and nothing is written")
    p.add_argument("--policy", default="slo", help="policy for discovered deployments")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="policy knob for discovered deployments (repeatable)")
    p.add_argument("--stale-after-s", type=float, default=60.0,
                   help="hold when the newest metrics are older than this")
    add_log_level(p)
    p.add_argument("--metrics-port", type=int,
                   help="serve the autoscaler's own metrics (desired/current/ready replicas, "
                        "inputs, predicted vs observed attainment) on this port")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics port binds to (default: %(default)s)")
    p.set_defaults(func=main)


def load_targets(args: argparse.Namespace) -> list[ScaleTarget]:
    if args.targets is not None:
        docs = yaml.safe_load(args.targets.read_text())
        if not isinstance(docs, list):
            raise ValueError(
                f"{args.targets}: expected a list of targets, got {type(docs).__name__}"
            )
        return [ScaleTarget.model_validate(d) for d in docs]
    return [
        ScaleTarget(
            namespace=args.namespace or "default",
            name=args.name,
            slo=Slo(ttft_p95_ms=args.slo_ttft_ms, tpot_p95_ms=args.slo_tpot_ms),
            capacity=ReplicaCapacity(
                max_concurrency=args.max_concurrency,
                decode_tokens_per_s=args.decode_tokens_per_s,
                prefill_tokens_per_s=args.prefill_tokens_per_s,
                usable_fraction=args.usable_fraction,
                decode_step_ms=args.decode_step_ms,
            ),
            limits=Limits(
                min_replicas=args.min_replicas,
                max_replicas=args.max_replicas,
                cold_start_s=args.cold_start_s,
                stale_after_s=args.stale_after_s,
            ),
            endpoints=tuple(args.scrape or ()),
        )
    ]


def discovery_options(args: argparse.Namespace) -> DiscoveryOptions:
    return DiscoveryOptions(policy=args.policy, knobs=parse_knobs(args.knob),
                            stale_after_s=args.stale_after_s,
                            default_cold_start_s=args.cold_start_s)


def _check_source(args: argparse.Namespace, targets: list[ScaleTarget]) -> None:
    """Without Prometheus every target needs engine URLs to scrape (discovered targets
    get theirs from the cluster)."""
    if args.prometheus_url or _discovers(args):
        return
    missing = [f"{t.namespace}/{t.name}" for t in targets if not t.endpoints]
    if missing:
        raise ValueError(f"no metrics source for {', '.join(missing)}: give "
                         "--prometheus-url, --scrape URL..., or endpoints in --targets")


def _discovers(args: argparse.Namespace) -> bool:
    """Targets from the cluster: a cluster to talk to and no targets file."""
    return uses_cluster_access(args) and args.targets is None


async def _serve(args: argparse.Namespace, targets: list[ScaleTarget]) -> None:
    writer: Writer = AdvisoryWriter(args.replicas)
    api = None
    if uses_cluster_access(args):
        from tierserve.core.kube.client import KubeApi
        from tierserve.core.kube.credentials import Credentials
        from tierserve.core.kube.scale import KubeScaleWriter

        credentials = await Credentials.load(args.kubeconfig, args.in_cluster)
        api = await KubeApi.connect(credentials=credentials)
        writer = KubeScaleWriter(api)
    try:
        await _loop(args, targets, writer, api)
    finally:
        if api is not None:
            await api.close()


async def _loop(args: argparse.Namespace, targets: list[ScaleTarget],
                writer: Writer, api: Any) -> None:
    import aiohttp

    from tierserve.autoscaler.sources import PrometheusSource, ScrapeSource

    async with aiohttp.ClientSession() as session:
        source: MetricsSource = (
            PrometheusSource(session, args.prometheus_url, window_s=max(30.0, 3 * args.interval_s))
            if args.prometheus_url
            else ScrapeSource(session)
        )
        ctl = Controller(targets, source, writer, clock=time.time, interval_s=args.interval_s,
                         events=writer)
        if args.metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr=args.metrics_host, registry=ctl.registry)
        discovery = Discovery(ctl, discovery_options(args)) if api is not None else None
        stop = asyncio.Event()
        if args.once:
            if discovery is not None and _discovers(args):
                from tierserve.autoscaler.watch import initial_targets

                await initial_targets(api, args.namespace, discovery,
                                      slices=not args.prometheus_url)
            await ctl.step()
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(ctl.run(stop))]
        if discovery is not None and _discovers(args):
            from tierserve.autoscaler.watch import watch_deployments

            tasks.append(asyncio.create_task(watch_deployments(
                api, args.namespace, discovery, stop, slices=not args.prometheus_url)))
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(args: argparse.Namespace) -> int:
    try:
        parse_knobs(args.knob)
        targets = [] if _discovers(args) else load_targets(args)
        _check_source(args, targets)
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        print(f"tierserve autoscaler: {exc}", file=sys.stderr)
        return 2
    from tierserve.core.kube.credentials import CredentialsError

    try:
        asyncio.run(_serve(args, targets))
    except CredentialsError as exc:
        print(f"tierserve autoscaler: {exc}", file=sys.stderr)
        return 2
    return 0

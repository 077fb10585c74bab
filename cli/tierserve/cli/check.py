"""``tierserve check``: is an installation serving? The chart's ``helm test`` hooks run it
(in the chart's own image), and so can anyone with access to the cluster.

* ``tierserve check router URL``: the router at ``URL`` answers ``GET /v1/models`` with
  an OpenAI model list (200, ``{"object": "list", "data": [...]}``; no routes yet is an
  empty list, still a pass).
* ``tierserve check leader``: the operator's Lease has a holder that keeps renewing it.
  Renewal is judged the way a follower judges it (client-go): the record must change
  within ``leaseDurationSeconds`` as observed on this machine's clock, never by comparing
  the holder's ``renewTime`` with the local time (clock skew).

Exit status 0 with one line saying what was seen; 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tierserve.core.cliflags import add_cluster_access, add_log_level

Lease = dict[str, Any]


class CheckFailed(Exception):
    """What the check saw instead of a serving installation."""


async def check_router(url: str, timeout_s: float = 10.0) -> str:
    models = url.rstrip("/") + "/v1/models"
    try:
        async with aiohttp.ClientSession() as s, s.get(
                models, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            text = await r.text()
            if r.status != 200:
                raise CheckFailed(f"GET {models}: HTTP {r.status}: {text[:200]}")
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CheckFailed(f"GET {models}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(body, dict) or body.get("object") != "list" or not isinstance(
            body.get("data"), list):
        raise CheckFailed(f"GET {models}: not an OpenAI model list: {text[:200]}")
    names = [str(m.get("id")) for m in body["data"] if isinstance(m, dict)]
    return f"router {url} serves {len(names)} model(s){': ' + ', '.join(names) if names else ''}"


async def check_leader(read: Callable[[], Awaitable[Lease | None]], where: str, *,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                       poll_s: float = 1.0) -> str:
    """Pass when the Lease ``read`` returns has a holder and changes (a renewal) within its
    ``leaseDurationSeconds`` of local time."""
    first = await read()
    if first is None:
        raise CheckFailed(f"no Lease {where}: no operator has ever led (is it running?)")
    spec = first.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if not holder:
        raise CheckFailed(f"Lease {where} has no holder: no operator leads")
    duration = float(spec.get("leaseDurationSeconds") or 15)
    version = (first.get("metadata") or {}).get("resourceVersion")
    deadline = clock() + duration
    while clock() < deadline:
        await sleep(poll_s)
        now = await read()
        if now is None:
            raise CheckFailed(f"Lease {where} was deleted")
        if (now.get("metadata") or {}).get("resourceVersion") != version:
            renewer = (now.get("spec") or {}).get("holderIdentity") or ""
            if not renewer:
                raise CheckFailed(f"Lease {where} was released by {holder}")
            return f"operator {renewer} leads (renewed Lease {where})"
    raise CheckFailed(f"Lease {where} held by {holder} was not renewed in {duration:g} s "
                      "(local time): the holder is gone")


async def _leader(args: argparse.Namespace) -> str:
    from tierserve.core.kube.client import KubeApi
    from tierserve.core.kube.credentials import Credentials, CredentialsError
    from tierserve.core.kube.errors import ApiError

    where = f"{args.namespace}/{args.lease}"
    try:
        credentials = await Credentials.load(args.kubeconfig, args.in_cluster)
    except CredentialsError as exc:
        raise CheckFailed(str(exc)) from exc
    api = await KubeApi.connect(credentials=credentials)

    async def read() -> Lease | None:
        try:
            return await api.get("coordination.k8s.io/v1", "Lease", args.namespace, args.lease)
        except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise CheckFailed(f"reading Lease {where}: {exc}") from exc

    try:
        return await check_leader(read, where)
    finally:
        await api.close()


def run(args: argparse.Namespace) -> int:
    try:
        if args.what == "router":
            line = asyncio.run(check_router(args.url, args.timeout_s))
        else:
            line = asyncio.run(_leader(args))
    except CheckFailed as exc:
        print(f"tierserve check {args.what}: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"tierserve check {args.what}: ok: {line}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="check that the router answers or the operator leads",
                       description="Is an installation serving? The chart's helm test "
                       "hooks run these checks; exit status 0 when it is, 1 with the reason.")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    router = what.add_parser("router", help="GET URL/v1/models answers a model list")
    router.add_argument("url", help="the router's base URL, e.g. http://tierserve-router.ns.svc")
    router.add_argument("--timeout-s", type=float, default=10.0,
                        help="give up on the request after this long (default: %(default)s)")
    add_log_level(router)
    leader = what.add_parser("leader", help="the operator's Lease has a holder renewing it")
    leader.add_argument("--namespace", required=True, help="the Lease's namespace")
    leader.add_argument("--lease", default="tierserve-operator",
                        help="the Lease's name (default: %(default)s)")
    add_cluster_access(leader)
    add_log_level(leader)
    p.set_defaults(func=run)

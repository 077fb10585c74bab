"""``tierserve-dev bench operator --json``: the operator against a real API server.

Brings up the local control plane (``tierserve-dev cluster``, real kube-apiserver + etcd)
unless ``--kubeconfig`` names one, runs the operator as a separate process, and measures:

* apply-to-children latency: create one LLMDeployment, time until its last child (the
  Service) exists; sequential samples, p50/p99;
* wall time to reconcile N objects created at once, until every object has children and
  a status for its generation;
* steady-state writes: write calls the operator makes over a window with two forced
  resyncs of every object (counted by the operator's client, cross-checked with the API
  server's own ``apiserver_request_total`` for tierserve.io resources), per reconcile;
* the operator's resident memory at N objects.

Objects use ``replicas: 0`` so the figures are the operator's, not kwok's pod churn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tierserve.core.kube.client import KubeApi
from tierserve.dev.testing import sum_samples

ROOT = Path(__file__).resolve().parents[4]
API = "tierserve.io/v1alpha1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--latency-samples", type=int, default=100)
    p.add_argument("--window-s", type=float, default=25.0)
    p.add_argument("--keep", action="store_true", help="leave the started cluster running")


def _object(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": name, "uri": "hf://org/model", "parametersBillions": 8},
                     "runtime": "triton", "engine": "simulated", "accelerator": {"type": "L4"},
                     "replicas": 0, "minReplicas": 0, "maxReplicas": 2,
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}}}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def _until(check: Any, limit_s: float, what: str, every: float = 0.005) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


async def _latency(api: KubeApi, ns: str, n: int, warmup: int = 3) -> list[float]:
    """Sequential samples; the first ``warmup`` (the operator's watches still starting
    up) are measured but not reported."""
    samples = []
    for i in range(n + warmup):
        name = f"lat-{i}"
        t0 = time.monotonic()
        await api.create(_object(ns, name))

        async def has_service(name: str = name) -> bool:
            return await api.get("v1", "Service", ns, name) is not None

        await _until(has_service, 30, f"children of {name}")
        samples.append(time.monotonic() - t0)
    return samples[warmup:]


async def _bulk(api: KubeApi, ns: str, n: int) -> float:
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await api.create(_object(ns, f"obj-{i}"))

    t0 = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(n)))

    async def done() -> bool:
        items = await api.list(API, "LLMDeployment", ns)
        ok = sum(1 for o in items if o["metadata"]["name"].startswith("obj-")
                 and (o.get("status") or {}).get("observedGeneration")
                 == o["metadata"]["generation"])
        services = await api.list("v1", "Service", ns)
        return ok == n and sum(1 for s in services if s["metadata"]["name"]
                               .startswith("obj-")) == n

    await _until(done, 600, f"{n} objects reconciled", every=1.0)
    return time.monotonic() - t0


async def _operator_metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        return sum_samples(await r.text(), "tierserve_operator_")


async def _apiserver_writes(api: KubeApi) -> float:
    total = 0.0
    for line in (await api.raw("/metrics")).splitlines():
        if (line.startswith("apiserver_request_total{") and 'group="tierserve.io"' in line
                and any(f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE",
                                                        "APPLY"))):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _steady(api: KubeApi, port: int, window: float) -> dict[str, float]:
    async def quiet() -> bool:
        a = await _operator_metrics(port)
        await asyncio.sleep(2.0)
        b = await _operator_metrics(port)
        return a == b and b["tierserve_operator_workqueue_depth"] == 0

    await _until(quiet, 300, "the operator to go quiet", every=0.1)
    m0, s0 = await _operator_metrics(port), await _apiserver_writes(api)
    await asyncio.sleep(window)  # covers two full resyncs (--resync-s 10)
    m1, s1 = await _operator_metrics(port), await _apiserver_writes(api)
    writes = (m1["tierserve_operator_api_writes_total"]
              - m0["tierserve_operator_api_writes_total"])
    reconciles = (m1["tierserve_operator_reconciles_total"]
                  - m0["tierserve_operator_reconciles_total"])
    return {"writes": writes, "reconciles": reconciles, "apiserver_writes": s1 - s0}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_operator(kubeconfig: str, ns: str, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tierserve.cli.main", "operator", "--kubeconfig", kubeconfig,
           "-n", ns, "--no-leader-elect", "--metrics-port", str(port),
           "--resync-s", "10"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _prepare(kubeconfig: str) -> str:
    """Install the CRDs and make a fresh namespace; returns its name."""
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(ROOT / "crds")], check=True,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                    "crd/llmdeployments.tierserve.io"], check=True, capture_output=True)
    subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
    return ns


async def measure(kubeconfig: str, ns: str, port: int, pid: int,
                  args: argparse.Namespace) -> dict[str, Any]:
    api = await KubeApi.connect(kubeconfig)
    try:
        version = json.loads(await api.raw("/version"))["gitVersion"]

        async def metrics_up() -> bool:
            try:
                await _operator_metrics(port)
                return True
            except aiohttp.ClientError:
                return False

        await _until(metrics_up, 60, "operator metrics endpoint", every=0.2)
        lat = await _latency(api, ns, args.latency_samples)
        cpu0 = _cpu_s(pid)
        bulk = await _bulk(api, ns, args.objects)
        bulk_cpu = _cpu_s(pid) - cpu0
        steady = await _steady(api, port, args.window_s)
        rss = _rss_mb(pid)
    finally:
        await api.close()
    return {
        "api_server": f"kube-apiserver {version} + etcd (local, 127.0.0.1)",
        "apply_to_children_p50_s": round(statistics.median(lat), 4),
        "apply_to_children_p99_s": round(_pct(lat, 0.99), 4),
        "apply_to_children_samples": len(lat),
        "reconcile_1000_s": round(bulk, 2),
        "operator_cpu_s_during_1000": round(bulk_cpu, 1),
        "objects": args.objects,
        "steady_state_writes": steady["writes"],
        "steady_state_writes_per_reconcile": round(
            steady["writes"] / max(1.0, steady["reconciles"]), 4),
        "steady_state_reconciles": steady["reconciles"],
        "apiserver_tierserve_writes_in_window": steady["apiserver_writes"],
        "rss_mb": round(rss, 1),
    }


def _measure_with_operator(kubeconfig: str, args: argparse.Namespace) -> dict[str, Any]:
    from tierserve.dev.cluster.procs import free_port

    ns, port = _prepare(kubeconfig), free_port()
    proc = _start_operator(kubeconfig, ns, port)
    try:
        return asyncio.run(measure(kubeconfig, ns, port, proc.pid, args))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", ns,
                        "--wait=false"], capture_output=True)


def run(args: argparse.Namespace) -> int:
    from tierserve.dev.cluster import cluster

    opts = cluster.Options(name="bench", log=lambda m: print(m, file=sys.stderr))
    started = args.kubeconfig is None
    kubeconfig = args.kubeconfig or str(cluster.up(opts).kubeconfig())
    try:
        result = _measure_with_operator(kubeconfig, args)
    finally:
        if started and not args.keep:
            cluster.down(opts)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:40s} {v}")
    return 0

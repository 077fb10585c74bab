"""The fast burn-rate page (``TierserveErrorBudgetBurnFast``) fires for a deployment whose
engine misses its SLO and stays quiet for one that meets it, as Prometheus' own
``/api/v1/alerts`` reports them.

Real parts: two simulated engines (``tierserve engine``) with the same SLO, a slow
profile (``smollm2-135m-cpu1``: about 24 ms per output token, against a 15 ms TPOT target)
for ``chat-slow`` and a fast one (``llama-3.1-8b-h100``: about 5 ms) for ``chat-fast``;
Debian's Prometheus scraping them every second with the shipped rule files of
``dashboards/rules/`` unchanged. The SLO targets come from the operator's own
deployment-state collector (:class:`~tierserve.operator.state_metrics.StateCollector`),
served on its own port over a store holding the two LLMDeployments: the operator itself
fills that store from a kube-apiserver watch, which this test (no cluster) stands in for.

The page has no ``for:``, so it goes straight to ``firing``: the test waits for firing,
not pending. The healthy deployment's absence is checked only after the alert rule has
been evaluated with that deployment's burn rates present (its ``lastEvaluation`` is later
than their samples), so "no alert" is a verdict, not "no data yet".
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from tierserve.dev.cluster import prometheus
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.engine_loadgen import run_load
from tierserve.dev.waiting import wait_until, wait_until_async
from tierserve.operator.state_metrics import StateCollector
from tierserve.operator.store import Store

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "rules"
NS, SLOW, FAST = "team", "chat-slow", "chat-fast"
PROFILES = {SLOW: "smollm2-135m-cpu1", FAST: "llama-3.1-8b-h100"}
# Both targets are bucket boundaries of the engine's histograms (exact attainment).
SLO = {"ttftP95Ms": 500, "tpotP95Ms": 15, "targetAttainment": 0.99}
PAGE = "TierserveErrorBudgetBurnFast"


def _deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
            "spec": {"model": {"name": f"{name}-model", "uri": "hf://org/m",
                               "parametersBillions": 1},
                     "runtime": "triton", "engine": "simulated",
                     "engineProfile": PROFILES[name], "accelerator": {"type": "L4"},
                     "slo": SLO},
            "status": {"readyReplicas": 1}}


@pytest.fixture
def state_metrics() -> Iterator[str]:
    """The operator's deployment-state collector over a store with both deployments."""
    store = Store()
    for name in PROFILES:
        store.put_deployment(_deployment(name), deleted=False)
    registry = CollectorRegistry()
    registry.register(StateCollector(store))
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _serving(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[dict[str, str]]:
    """One ``tierserve engine`` process per deployment, stopped by pid."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for name, profile in PROFILES.items():
            port = free_port()
            with (tmp_path / f"{name}.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "tierserve.cli.main", "engine", "--profile", profile,
                     "--served-name", "m", "--port", str(port), "--host", "127.0.0.1"],
                    stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_until(functools.partial(_serving, url + "/metrics"), 60, f"{url} serving")
        yield urls
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)


@pytest.fixture
def prom(engines: dict[str, str], state_metrics: str,
         tmp_path: Path) -> Iterator[prometheus.LocalPrometheus]:
    prometheus.binary_or_skip()
    # engines labelled as the chart's PodMonitor does; the collector's series keep their own
    targets = [prometheus.ScrapeTarget(url + "/metrics", prometheus.deployment_labels(NS, name))
               for name, url in engines.items()]
    targets.append(prometheus.ScrapeTarget(state_metrics + "/metrics", {}))
    p = prometheus.LocalPrometheus(tmp_path / "prom", targets, interval_s=1.0,
                                   rule_files=sorted(RULES.glob("*.yaml"))).start()
    try:
        yield p
    finally:
        p.stop()


def _burn_alerts(prom: prometheus.LocalPrometheus) -> dict[str, dict[str, Any]]:
    """Active burn-rate alerts (pending or firing) of our namespace, by alertname/deployment."""
    return {f"{a['labels']['alertname']}/{a['labels'].get('deployment')}": a
            for a in prom.get("alerts")["alerts"]
            if a["labels"]["alertname"].startswith("TierserveErrorBudgetBurn")
            and a["labels"].get("namespace") == NS}


def _evaluated_with_burn(prom: prometheus.LocalPrometheus, deployment: str) -> bool:
    """The SLO alert group ran after the deployment's 1 h and 5 m burn rates were recorded."""
    sel = f'namespace="{NS}",deployment="{deployment}"'
    stamps = [prom.query(f"timestamp(tierserve:deployment_error_budget_burn:rate{w}{{{sel}}})")
              for w in ("1h", "5m")]
    if not all(stamps):
        return False
    recorded = max(float(s[0]["value"][1]) for s in stamps)
    groups = prom.get("rules", {"type": "alert"})["groups"]
    slo = next(g for g in groups if g["name"] == "tierserve-slo-alerts")
    return datetime.fromisoformat(slo["lastEvaluation"]).timestamp() > recorded


def _paged(prom: prometheus.LocalPrometheus) -> bool:
    alert = _burn_alerts(prom).get(f"{PAGE}/{SLOW}")
    return (alert is not None and alert["state"] == "firing"
            and _evaluated_with_burn(prom, FAST))


def test_burn_rate_page_fires_for_breached_deployment_only(
        engines: dict[str, str], prom: prometheus.LocalPrometheus) -> None:
    async def run() -> None:
        # closed-loop streaming clients, cancelled once the verdict is in; lengths fixed
        loads = [asyncio.create_task(run_load(url, "m", concurrency=2, duration_s=300,
                                              prompt_tokens=8, max_tokens=16))
                 for url in engines.values()]

        async def paged() -> bool:
            for task in loads:  # a failing client ends the wait with its own error
                if task.done():
                    task.result()
            return await asyncio.to_thread(_paged, prom)

        try:
            await wait_until_async(paged, 120, f"{PAGE} firing for {SLOW}, {FAST} evaluated",
                                   interval=0.5)
        finally:
            for task in loads:
                task.cancel()
            await asyncio.gather(*loads, return_exceptions=True)

    asyncio.run(run())
    alerts = _burn_alerts(prom)
    page = alerts[f"{PAGE}/{SLOW}"]
    assert page["labels"]["severity"] == "critical"
    assert float(page["value"]) > 14.4, page  # the burn rate it fired on
    assert not [k for k in alerts if k.endswith(f"/{FAST}")], alerts
    # nor was it ever pending or firing while the run lasted
    ever = prom.query(f'ALERTS{{alertname=~"TierserveErrorBudgetBurn.*",deployment="{FAST}"}}[1h]')
    assert not ever, ever
    burn = prom.query(f'tierserve:deployment_error_budget_burn:rate5m{{deployment="{FAST}"}}')
    assert burn and float(burn[0]["value"][1]) < 14.4, burn
    print(f"\n{SLOW} page at burn {float(page['value']):.1f}, "
          f"{FAST} burn {float(burn[0]['value'][1]):.2f}")

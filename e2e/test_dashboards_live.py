"""Every query of every dashboard panel returns data from a live Prometheus scraping the
real components: nothing ships that shows "No data".

On the e2e cluster (a real kube-apiserver; kwok runs the pods): the operator
(``--target kubernetes``, its work queue and deployment-state metrics) reconciles two
LLMDeployments, an A/B LLMRoute, a tiered one and a route to a deployment that does not
exist (a reconcile error by reason); ``tierserve autoscaler --kubeconfig
--prometheus-url`` discovers and scales ``chat-a``; two simulated engines serve as the
deployments' replicas (labelled ``namespace``/``deployment`` as the chart's PodMonitor
relabels engine pods); a static-config router serves both routes with API keys, a dead
replica (retries, ejections), a canary variant with no live replica (failover) and a key
limited to one request a minute (429s). Debian's Prometheus scrapes all of them every
second and evaluates the recording rules and alerts of ``dashboards/rules/``.

After A/B, tiered and streamed traffic and a ``kubectl scale`` (a scale event), each
template variable's ``label_values`` query is answered, and every panel query (variables
substituted) and annotation query returns at least one series; the test fails naming
each panel that does not. With ``TIERSERVE_SNAPSHOT_DIR`` set it also draws every
dashboard there (``tierserve dashboards snapshot``, the pictures in docs/img/).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI, RateLimitError

from tierserve.dashboards import generate
from tierserve.dashboards.queries import (
    annotation_queries,
    label_values,
    panel_queries,
    substitute,
    variable_queries,
)
from tierserve.dev.cluster import prometheus
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port, terminate
from tierserve.dev.waiting import WaitTimeout, wait_until

pytestmark = [pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "dashboards" / "rules"
MAIN_KEY, LIMITED_KEY = "sk-main-e2e", "sk-limited-e2e"
RATE_INTERVAL = "15s"
PROFILE = "llama-3.1-8b-h100"


def _deployment(ns: str, name: str, slo: dict[str, Any], autoscale: bool,
                workload: dict[str, int] | None = None) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": f"{name}-model", "uri": "hf://org/m",
                               "parametersBillions": 8},
                     "runtime": "triton", "engine": "simulated", "engineProfile": PROFILE,
                     "accelerator": {"type": "H100-SXM", "gpusPerReplica": 1},
                     "replicas": 1, "minReplicas": 1, "maxReplicas": 3, "slo": slo,
                     "autoscaling": {"enabled": autoscale, "coldStartSeconds": 5},
                     **({"workload": workload} if workload else {})}}


def _route(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
            "metadata": {"name": name, "namespace": ns}, "spec": {"model": name, **spec}}


def _objects(ns: str) -> list[dict[str, Any]]:
    return [
        _deployment(ns, "chat-a", {"ttftP95Ms": 500, "tpotP95Ms": 50,
                                   "targetAttainment": 0.99}, autoscale=True),
        # a TTFT target at what the profile does for short prompts: its budget burns
        _deployment(ns, "chat-b", {"ttftP95Ms": 15, "tpotP95Ms": 8,
                                   "targetAttainment": 0.95}, autoscale=False,
                    workload={"inputTokens": 32, "outputTokens": 16}),
        _route(ns, "chat", {"variants": [{"name": "a", "deployment": "chat-a", "weight": 50},
                                         {"name": "b", "deployment": "chat-b", "weight": 50}]}),
        _route(ns, "chat-tiered", {"tiers": {"fast": "chat-a", "slow": "chat-b"}}),
        _route(ns, "orphan", {"variants": [{"name": "x", "deployment": "missing"}]}),
    ]


def _router_config(ns: str, a: str, b: str) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connect errors

    def dep(name: str, urls: list[str], gpu: str = "H100-SXM") -> dict[str, Any]:
        return {"name": f"{ns}/{name}", "served_model": "m", "gpu_type": gpu,
                "endpoints": [{"url": u} for u in urls],
                "balancing": {"scrape_metrics": False},
                "outlier": {"consecutive_failures": 1, "base_ejection_s": 1}}

    return {
        "auth": {"keys": [{"name": "main", "key": MAIN_KEY},
                          {"name": "limited", "key": LIMITED_KEY, "requests_per_minute": 1}]},
        "deployments": [dep("chat-a", [a, dead], "L4"), dep("chat-b", [b]),
                        dep("canary", [dead])],
        "routes": [
            {"model": "chat", "fallback": [f"{ns}/chat-b"], "variants": [
                {"name": "a", "deployment": f"{ns}/chat-a", "weight": 45},
                {"name": "b", "deployment": f"{ns}/chat-b", "weight": 45},
                {"name": "canary", "deployment": f"{ns}/canary", "weight": 10}]},
            {"model": "chat-tiered", "variants": [{"name": "tiered", "tiers": {
                "fast": f"{ns}/chat-a", "slow": f"{ns}/chat-b",
                "fast_options": {"max_tokens": 8}, "target_slow_share": 0.3,
                "escalate_on": ["error", "timeout", "length"]}}]},
        ],
    }


class Proc:
    """A ``tierserve`` subprocess, stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", *args],
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self) -> None:
        terminate(self.proc)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    made: list[Proc] = []

    def start(log: Path, *args: str) -> Proc:
        made.append(Proc(log, *args))
        return made[-1]

    yield start
    for p in reversed(made):
        p.stop()


def _prometheus_available() -> None:
    prometheus.binary_or_skip()


async def _traffic(router: str) -> dict[str, int]:
    """A/B and tiered requests (half streamed), then a burst on the limited key."""
    main = AsyncOpenAI(base_url=router + "/v1", api_key=MAIN_KEY, max_retries=0, timeout=30)
    limited = AsyncOpenAI(base_url=router + "/v1", api_key=LIMITED_KEY, max_retries=0)
    sem, counts = asyncio.Semaphore(6), {"ok": 0, "429": 0}

    async def one(model: str, i: int) -> None:
        # the simulated engine answers `output_tokens`: every third one runs past the
        # fast tier's 8-token cap (escalated on length), the others the fast tier answers
        hint = {"tierserve": {"output_tokens": 12 if i % 3 == 0 else 6}}
        async with sem:
            prompt = "explain step by step why " * (1 + i % 6)
            if i % 2:
                stream = await main.completions.create(model=model, prompt=prompt,
                                                       max_tokens=16, stream=True,
                                                       extra_body=hint)
                async for _ in stream:
                    pass
            else:
                await main.completions.create(model=model, prompt=prompt, max_tokens=16,
                                              extra_body=hint)
            counts["ok"] += 1

    await asyncio.gather(*(one(m, i) for i in range(40) for m in ("chat", "chat-tiered")))
    for _ in range(4):
        with contextlib.suppress(RateLimitError):
            await limited.completions.create(model="chat", prompt="hi", max_tokens=4)
            continue
        counts["429"] += 1
    await main.close()
    await limited.close()
    return counts


def _variable_values(prom: prometheus.LocalPrometheus, dash: dict[str, Any],
                     expected: dict[str, set[str]]) -> dict[str, str]:
    """Each query variable's options from Prometheus (as Grafana's dropdown gets them);
    the chosen value is the test's own objects, as a multi-value regex."""
    chosen: dict[str, str] = {}
    for name, query in variable_queries(dash).items():
        ns = "|".join(expected["namespace"])
        selector, label = label_values(substitute(query, {"namespace": ns, "model": ".*"}))
        options = {s.get(label) for s in prom.get("series", {"match[]": selector})}
        assert expected[name] <= options, f"variable {name}: {query} offers {options}"
        chosen[name] = "(" + "|".join(sorted(expected[name])) + ")"
    return chosen


def _missing(prom: prometheus.LocalPrometheus, queries: dict[str, list[str]]) -> list[str]:
    """Titles of the panels with a query that returns no series."""
    return [title for title, exprs in queries.items()
            if any(not prom.query(e) for e in exprs)]


@dataclass
class Stack:
    ns: str
    router: str
    prom: prometheus.LocalPrometheus
    router_proc: Proc


def _engines(procs: Callable[..., Proc], tmp: Path) -> dict[str, str]:
    """One simulated engine per deployment (its replica, as far as the metrics go)."""
    engines = {}
    for name in ("chat-a", "chat-b"):
        port = free_port()
        procs(tmp / f"{name}.log", "engine", "--profile", PROFILE, "--served-name", "m",
              "--port", str(port))
        engines[name] = f"http://127.0.0.1:{port}"
    return engines


ROUTER_NS = "tierserve-system"  # the chart's default release namespace


def _targets(ns: str, engines: dict[str, str], others: list[str]) -> list[Any]:
    """Engines with the labels the chart's PodMonitor gives engine pods; the router with
    its pod's namespace, which in the chart is the release's, not the routes' (so the
    router panels must not select on the namespace variable); the operator and
    autoscaler as they are (honoured labels)."""
    labels = prometheus.deployment_labels
    return ([prometheus.ScrapeTarget(u + "/metrics", {**labels(ns, n), "deployment": n})
             for n, u in engines.items()]
            + [prometheus.ScrapeTarget(others[0] + "/metrics", {"namespace": ROUTER_NS})]
            + [prometheus.ScrapeTarget(u + "/metrics", {}) for u in others[1:]])


@pytest.fixture
def stack(cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
          procs: Callable[..., Proc], tmp_path: Path) -> Iterator[Stack]:
    _prometheus_available()
    operator = operator_factory("dash").start()
    cluster.apply(_objects(namespace), namespace=namespace)
    engines = _engines(procs, tmp_path)
    config = tmp_path / "router.json"
    config.write_text(json.dumps(_router_config(namespace, engines["chat-a"], engines["chat-b"])))
    port, scaler_port = free_port(), free_port()
    router = procs(tmp_path / "router.log", "router", "--config", str(config), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    targets = _targets(namespace, engines, [url, f"http://127.0.0.1:{operator.metrics_port}",
                                            f"http://127.0.0.1:{scaler_port}"])
    prom = prometheus.LocalPrometheus(tmp_path / "prom", targets, interval_s=1.0,
                                      rule_files=sorted(RULES.glob("*.yaml"))).start()
    try:
        procs(tmp_path / "autoscaler.log", "autoscaler", "--kubeconfig", str(cluster.kubeconfig),
              "--namespace", namespace, "--prometheus-url", prom.url, "--interval-s", "2",
              "--metrics-port", str(scaler_port))
        for u in (*engines.values(), url):
            wait_until(functools.partial(_serving, u + "/metrics"), 60, f"{u} serving")
        yield Stack(namespace, url, prom, router)
    finally:
        prom.stop()
        operator.stop()


class Load:
    """Rounds of :func:`_traffic` in a thread until stopped: the dashboards are read under
    load, as people read them (the autoscaler's inputs need requests in its window)."""

    def __init__(self, router: str) -> None:
        self.router, self.rounds = router, list[dict[str, int]]()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.rounds.append(asyncio.run(_traffic(self.router)))
            except BaseException as exc:  # re-raised by stop()
                self.error = exc
                return

    def stop(self) -> list[dict[str, int]]:
        self._stop.set()
        self._thread.join(timeout=120)
        if self.error is not None:
            raise self.error
        return self.rounds


def _scraped(prom: prometheus.LocalPrometheus, promql: str) -> bool:
    return bool(prom.query(promql))


def test_every_panel_query_returns_data(stack: Stack, cluster: ClusterHandle) -> None:
    started, ns = time.monotonic(), stack.ns
    # the scale event must change a count Prometheus has already seen
    wait_until(functools.partial(_scraped, stack.prom, "tierserve_deployment_replicas_desired"
                                 f'{{namespace="{ns}", deployment="chat-b"}} == 1'),
               60, "chat-b's replica count scraped")
    load = Load(stack.router)
    try:
        wait_until(lambda: bool(load.rounds) or load.error is not None, 120, "a round")
        cluster.kubectl("scale", "llmd/chat-b", "-n", ns, "--replicas=2")
        _check_every_panel(stack.prom, ns)
        print(f"\ntraffic and checks took {time.monotonic() - started:.1f}s")
        if os.environ.get("TIERSERVE_SNAPSHOT_DIR"):  # more of the same for the pictures
            time.sleep(float(os.environ.get("TIERSERVE_SNAPSHOT_LOAD_S", "150")) / 2)
            cluster.kubectl("scale", "llmd/chat-b", "-n", ns, "--replicas=1")
            time.sleep(float(os.environ.get("TIERSERVE_SNAPSHOT_LOAD_S", "150")) / 2)
    finally:
        rounds = load.stop()
    assert all(r["ok"] == 80 and r["429"] >= 2 for r in rounds), (rounds,
                                                                   stack.router_proc.tail())
    if os.environ.get("TIERSERVE_SNAPSHOT_DIR"):
        _snapshot(stack.prom, ns, Path(os.environ["TIERSERVE_SNAPSHOT_DIR"]),
                  f"now-{round(time.monotonic() - started)}s")


def _all_answered(prom: prometheus.LocalPrometheus, queries: dict[str, list[str]]) -> bool:
    return not _missing(prom, queries)


def _check_every_panel(prom: prometheus.LocalPrometheus, ns: str) -> None:
    expected = {"namespace": {ns}, "model": {"chat-a-model", "chat-b-model"},
                "deployment": {"chat-a", "chat-b"}, "route": {"chat", "chat-tiered", "orphan"}}
    missing: dict[str, list[str]] = {}
    for dash in generate.as_dicts():
        values = wait_until_value(functools.partial(_variable_values, prom, dash, expected),
                                  60, f"{dash['uid']}: template variables answered")
        queries: dict[str, list[str]] = {}
        for q in panel_queries(dash, values, RATE_INTERVAL):
            queries.setdefault(q.panel, []).append(q.expr)
        for name, expr in annotation_queries(dash, values, "1m").items():
            queries[f"annotation {name}"] = [expr]
        try:
            wait_until(functools.partial(_all_answered, prom, queries), 45,
                       f"{dash['uid']}: every panel has data")
        except WaitTimeout:
            missing[dash["title"]] = _missing(prom, queries)
    assert not missing, "panels without data: " + json.dumps(missing, indent=1)


def wait_until_value(fn: Callable[[], dict[str, str]], timeout: float,
                     what: str) -> dict[str, str]:
    """``fn()`` once it stops raising AssertionError (then its value)."""
    got: list[dict[str, str]] = []

    def ok() -> bool:
        try:
            got.append(fn())
            return True
        except AssertionError:
            return False

    wait_until(ok, timeout, what)
    return got[-1]


def _snapshot(prom: prometheus.LocalPrometheus, ns: str, out: Path, start: str) -> None:
    subprocess.run([sys.executable, "-m", "tierserve.cli.main", "dashboards", "snapshot",
                    "--prometheus", prom.url, "--from", start, "--out", str(out),
                    "--var", f"namespace={ns}", "--rate-interval", RATE_INTERVAL], check=True)

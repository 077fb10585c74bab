"""The demo once every model is served: Prometheus and the autoscaler, the traffic with
its live view, then the report, the dashboard snapshots and the checks.

The checks are what the demo promises (and what ``e2e/test_demo.py`` relies on): every
LLMDeployment and LLMRoute Ready at the end, no failed request, SmolLM2 scaled up while
the burst ran and back down after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tierserve.dev.cluster import procs, prometheus
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.demo import stack, watch
from tierserve.dev.demo.checks import Traffic, checks, print_checks
from tierserve.dev.demo.traffic import DemoPlan, DemoRecord, drive
from tierserve.dev.waiting import wait_until

if TYPE_CHECKING:
    from tierserve.dev.demo.run import Demo

SCALED = "smollm2-ray"  # the deployment the burst scales (examples/ray-smollm2-cpu.yaml)
# The A/B route's model twice for the tiered one's once: SmolLM2 (80% of `chat`) then
# holds most of the burst's clients most of the time, so requests queue on its one
# replica; three models in the cycle also give `chat` every sticky user (with two,
# `chat` would only see the even-numbered ones).
ROUTES = ("chat", "qa", "chat")


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((stack.ROOT / "examples" / name).read_text())
    return loaded


BURST_CLIENTS = 4  # SmolLM2's one replica then has two or three requests at once


def plan(short: bool) -> DemoPlan:
    """The phases, with the idle tail sized by the scaled example's scale-down window."""
    window = float(_example("ray-smollm2-cpu.yaml")["spec"]["autoscaling"]
                   ["scaleDownStabilizationSeconds"])
    base = (DemoPlan.short if short else DemoPlan.default)(window, ROUTES)
    return dataclasses.replace(base, phases=tuple(
        dataclasses.replace(ph, clients=BURST_CLIENTS) if ph.name == "burst" else ph
        for ph in base.phases))


def start_metrics(demo: Demo, c: ClusterHandle) -> prometheus.LocalPrometheus:
    """Prometheus scraping the components and every engine, then the autoscaler on it."""
    out = demo.opts.out
    engines: list[prometheus.ScrapeTarget] = []

    def found() -> bool:
        deployments = watch.items(c, "llmdeployments")
        engines[:] = [t for d in deployments
                      if (t := stack.engine_target(d, out / "local")) is not None]
        return len(engines) == len(deployments)

    wait_until(found, 60, "every engine's metrics endpoint")
    port = procs.free_port()  # the autoscaler's, scraped from the start
    targets = stack.component_targets(demo.component("router").url,
                                      [demo.component("operator").url, f"http://127.0.0.1:{port}"])
    prom = stack.start_prometheus(out, targets + engines)
    demo.prom_url = prom.url
    for t in engines:
        stack.log_line(f"scraping {t.url} as {t.labels['deployment']}")
    autoscaler = demo.started(stack.autoscaler(out, stack.service_account_kubeconfig(
        c, out / "kubeconfigs" / "autoscaler", "tierserve-autoscaler"), prom.url, port))
    wait_until(lambda: _discovered(demo, autoscaler), 90,
               f"the autoscaler to pick up {SCALED} (log {autoscaler.log})")
    return prom


def _discovered(demo: Demo, autoscaler: stack.Component) -> bool:
    demo.check_alive()
    return f"autoscaling default/{SCALED}" in autoscaler.log.read_text(errors="replace")


def _serves_routes(demo: Demo) -> bool:
    import json
    import urllib.request

    demo.check_alive()
    with urllib.request.urlopen(demo.component("router").url + "/v1/models", timeout=5) as r:
        served = {m["id"] for m in json.loads(r.read())["data"]}
    return set(ROUTES) <= served


async def _drive(demo: Demo, p: DemoPlan, watcher: watch.Watcher) -> list[DemoRecord]:
    from tierserve.dev.demo.progress import LiveView

    router = demo.component("router").url
    slo = _example("ray-smollm2-cpu.yaml")["spec"]["slo"]
    view = LiveView(sys.stdout, slo["ttftP95Ms"] / 1000, slo["tpotP95Ms"] / 1000)
    records: list[DemoRecord] = []
    task = asyncio.create_task(drive(router, None, p, records.append))
    t0 = time.monotonic()
    try:
        while not task.done():
            demo.check_alive()
            view.update(_phase_at(p, time.monotonic() - t0), records, watcher.replicas())
            await asyncio.wait({task}, timeout=1.0)
    finally:
        view.close()
        if not task.done():
            task.cancel()
    return task.result()


def _phase_at(p: DemoPlan, elapsed: float) -> str:
    for phase in p.phases:
        if elapsed < phase.duration_s:
            return phase.name
        elapsed -= phase.duration_s
    return p.phases[-1].name


def traffic(demo: Demo, p: DemoPlan, watcher: watch.Watcher) -> Traffic:
    """Run the plan through the router; then, if SmolLM2 was scaled up, wait (bounded)
    until it is back at one replica."""
    models = ", ".join(sorted(set(ROUTES)))
    wait_until(lambda: _serves_routes(demo), 60, f"the router to serve {models}")
    started, started_unix = time.monotonic(), time.time()
    i = _burst_index(p)
    before = sum(ph.duration_s for ph in p.phases[:i])
    burst = (started + before, started + before + p.phases[i].duration_s)
    records = asyncio.run(_drive(demo, p, watcher))
    peak = max((pt.spec for pt in watcher.points.get(SCALED, [])), default=1)
    if peak > 1:  # the idle tail was sized for the window; allow the autoscaler's lag
        wait_until(lambda: _back_to_one(watcher), 240,
                   f"{SCALED} to scale back to 1 after the burst")
    return Traffic(records, watcher, started_unix, started, burst)


def _back_to_one(watcher: watch.Watcher) -> bool:
    last = watcher.points.get(SCALED, [])[-1:]
    return bool(last) and last[0].spec == last[0].ready == 1


def _burst_index(p: DemoPlan) -> int:
    return max(range(len(p.phases)), key=lambda i: p.phases[i].clients)


def phase_windows(p: DemoPlan, started_unix: float) -> list[dict[str, Any]]:
    """Each phase's wall-clock range (Unix seconds) as scheduled from the start."""
    out, t = [], started_unix
    for ph in p.phases:
        out.append({"name": ph.name, "clients": ph.clients, "start": t,
                    "end": t + ph.duration_s})
        t += ph.duration_s
    return out


def _describe(p: DemoPlan) -> str:
    return ", ".join(f"{ph.name} {ph.duration_s:g} s x {ph.clients} clients" for ph in p.phases)


def run(demo: Demo, c: ClusterHandle) -> bool:
    """The steps after every model is Ready; True when every check passed."""
    p = plan(demo.opts.short)
    with demo.step("Prometheus (the chart's rules) and tierserve autoscaler --prometheus-url"):
        prom = start_metrics(demo, c)
    watcher = watch.Watcher(c).start()
    try:
        with demo.step(f"traffic through the router ({_describe(p)})"):
            t = traffic(demo, p, watcher)
    finally:
        watcher.stop()
    ended = time.time()
    with demo.step("kubectl get llm -A"):
        print(c.kubectl("get", "llm", "-A"), flush=True)
    with demo.step(f"summary, timeline ({demo.opts.out}/summary.md, timeline.png)"):
        report(demo.opts.out, c, t, prom)
    with demo.step(f"dashboard snapshots ({demo.opts.out}/dashboards/)"):
        snapshots(demo.opts.out / "dashboards", prom.url, t.started_unix - 30, ended + 5)
    results = checks(t, watch.not_ready(c), SCALED)
    print_checks(results)
    (demo.opts.out / "run.json").write_text(watch.dumps({
        "phases": phase_windows(p, t.started_unix), "ended": ended,
        "checks": {what: ok for what, (ok, _) in results.items()}}) + "\n")
    return all(ok for ok, _ in results.values())


def report(out: Path, c: ClusterHandle, t: Traffic, prom: prometheus.LocalPrometheus) -> None:
    from tierserve.dev.demo import report as report_

    report_.write(out, t.records, t.watcher.points, watch.scaled_events(c),
                  watch.items(c, "llmroutes"), watch.items(c, "llmdeployments"), prom.query)
    (out / "replicas.json").write_text(watch.dumps(t.watcher.dump()) + "\n")
    print((out / "summary.md").read_text(), flush=True)


def snapshots(out: Path, prom_url: str, start: float, end: float) -> None:
    """``tierserve dashboards snapshot`` of every dashboard over the run."""
    done = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "dashboards",
                           "snapshot", "--prometheus", prom_url, "--from", f"{start:.0f}",
                           "--to", f"{end:.0f}", "--out", str(out), "--rate-interval", "30s"],
                          capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"tierserve dashboards snapshot failed:\n{done.stderr[-3000:]}")
    for png in sorted(out.glob("*.png")):
        stack.log_line(str(png))

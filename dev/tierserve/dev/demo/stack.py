"""The demo's local stack: Tierserve's components as processes next to the dev cluster.

The chart's pods are kwok pods (nothing runs in them), so the real operator (``--target
local``: the engines run on this machine), router and autoscaler run here as processes,
each under its chart ServiceAccount's token, so the chart's RBAC is what they get. Each is
started by :func:`tierserve.dev.cluster.procs.start` into the demo's output directory
(``logs/<name>.log``, ``pids/<name>.pid`` with the pid's start time), so ``tierserve-dev
demo stop`` can stop a ``--keep`` run by pid later, and a failure can show the log.

Prometheus is :class:`~tierserve.dev.cluster.prometheus.LocalPrometheus` with the chart's
rules, scraping the three components and every engine (labelled as the chart's PodMonitor
relabels engine pods).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tierserve.autoscaler.discovery import metrics_url
from tierserve.dev.cluster import procs, prometheus
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.engine.local_runner import app_name

SYSTEM_NS = "tierserve-system"
ROOT = Path(__file__).resolve().parents[4]
RULES = ROOT / "charts" / "tierserve" / "rules"
# stop order: traffic's way in first, then what it reaches, Prometheus last
STOP_ORDER = ("autoscaler", "router", "operator", "prometheus")


def log_line(message: str) -> None:
    """A line of a step's output (indented under the step's heading)."""
    print(f"    {message}", flush=True)


def service_account_kubeconfig(cluster: ClusterHandle, path: Path, sa: str,
                               namespace: str = SYSTEM_NS) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount ``sa``."""
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=3h").strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa}}],
        "current-context": sa,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class Component:
    """One ``tierserve`` subcommand run as a detached process of the demo."""

    name: str
    args: list[str]
    out: Path  # the demo's output directory
    port: int = field(default_factory=procs.free_port)  # its serving or metrics port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.out / "pids" / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.out / "logs" / f"{self.name}.log"

    def start(self) -> Component:
        argv = [sys.executable, "-m", "tierserve.cli.main", *self.args]
        procs.start(self.name, argv, self.out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def alive(self) -> bool:
        return procs.is_running(self.pidfile)

    def tail(self, lines: int = 25) -> str:
        return procs.log_tail(self.out, self.name, lines)


def operator(out: Path, kubeconfig: Path, router_url: str) -> Component:
    c = Component("operator", [], out)
    c.args = ["operator", "--target", "local", "--kubeconfig", str(kubeconfig),
              "--lease-namespace", SYSTEM_NS, "--metrics-port", str(c.port),
              "--local-workdir", str(out / "local"), "--local-ray-port", str(procs.free_port()),
              "--router-url", router_url + "/v1"]
    return c


def router(out: Path, kubeconfig: Path) -> Component:
    c = Component("router", [], out)
    c.args = ["router", "--kubernetes", "--kubeconfig", str(kubeconfig), "--port", str(c.port),
              "--log-level", "info", "--drain-s", "5"]
    return c


def autoscaler(out: Path, kubeconfig: Path, prom_url: str, port: int) -> Component:
    c = Component("autoscaler", [], out, port)
    c.args = ["autoscaler", "--kubeconfig", str(kubeconfig), "--prometheus-url", prom_url,
              "--metrics-port", str(c.port), "--interval-s", "2", "--stale-after-s", "10",
              # SmolLM2 has at most 2 replicas: 2 -> 1 is a step worth taking at once (the
              # default smallest step is 2, a smaller one only after 10 idle minutes)
              "--knob", "down_min_step=1",
              # and the idle tail is the end of the traffic, not a lull in it: without
              # this the count stays at 2 until the burst leaves the 5-minute window
              "--knob", "down_safety_z=0"]
    return c


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_under(path: Path, needle: str) -> list[int]:
    """Processes whose command line holds ``needle`` and our private ``path``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if needle in (cmd := _cmdline(pid)) and str(path) in cmd]


def triton_metrics_url(local_workdir: Path, namespace: str, name: str) -> str | None:
    """The metrics URL of the local Triton server of one deployment: ``status.endpoint``
    names only its HTTP port, so it is read from the server's command line."""
    for pid in pids_under(local_workdir / "triton" / app_name(f"{namespace}/{name}"),
                          "tritonserver"):
        port = re.search(r"--metrics-port[= ](\d+)", _cmdline(pid))
        if port:
            return f"http://127.0.0.1:{port.group(1)}/metrics"
    return None


def engine_target(deployment: dict[str, object], local_workdir: Path
                  ) -> prometheus.ScrapeTarget | None:
    """Where Prometheus scrapes a Ready deployment's engine (None: not found yet)."""
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    assert isinstance(meta, dict) and isinstance(spec, dict) and isinstance(status, dict)
    ns, name = str(meta["namespace"]), str(meta["name"])
    url = (triton_metrics_url(local_workdir, ns, name) if spec.get("runtime") == "triton"
           else metrics_url(str(status.get("endpoint") or "")) if status.get("endpoint")
           else None)
    return None if url is None else prometheus.ScrapeTarget(
        url, prometheus.deployment_labels(ns, name))


def component_targets(router_url: str, others: list[str]) -> list[prometheus.ScrapeTarget]:
    """The router with its pod's namespace (in the chart: the release's, which the
    dashboards expect), the operator and autoscaler with their own labels."""
    return ([prometheus.ScrapeTarget(router_url + "/metrics", {"namespace": SYSTEM_NS})]
            + [prometheus.ScrapeTarget(url + "/metrics", {}) for url in others])


def start_prometheus(out: Path, targets: list[prometheus.ScrapeTarget]
                     ) -> prometheus.LocalPrometheus:
    """Prometheus every 2 s with the chart's recording and alerting rules; its pid goes
    into ``pids/prometheus.pid`` beside the components'."""
    prom = prometheus.LocalPrometheus(out / "prometheus", targets, interval_s=2.0,
                                      rule_files=sorted(RULES.glob("*.yaml"))).start()
    assert prom.proc is not None
    (out / "pids").mkdir(parents=True, exist_ok=True)
    (out / "pids" / "prometheus.pid").write_text(
        f"{prom.proc.pid} {procs.start_time(prom.proc.pid) or ''}\n")
    return prom


def _group(pid: int) -> list[tuple[int, str | None]]:
    """Processes in ``pid``'s process group (the operator's Ray and Triton children)."""
    out: list[tuple[int, str | None]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid and int(entry.name) != pid:
            out.append((int(entry.name), fields[19]))
    return out


def stop_pidfile(pidfile: Path) -> bool:
    """Stop the recorded process, then whatever it left in its process group (checked by
    start time, so a recycled pid is never signalled)."""
    entry = procs.read_pidfile(pidfile)
    group = _group(entry[0]) if entry else []
    stopped = procs.stop(pidfile, timeout=20.0)
    for pid, started in group:
        if procs.start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return stopped


def stop_all(out: Path) -> list[str]:
    """Stop every process this demo recorded under ``out/pids``, then any engine left
    running from its private ``out/local`` (a Triton server is its own process group, so
    an operator killed before it stopped its servers leaves them); the names stopped."""
    pids = out / "pids"
    if not pids.is_dir():
        return []
    names = [*STOP_ORDER, *sorted({p.stem for p in pids.glob("*.pid")} - set(STOP_ORDER))]
    stopped = [n for n in names
               if (pids / f"{n}.pid").exists() and stop_pidfile(pids / f"{n}.pid")]
    left = [(pid, procs.start_time(pid)) for pid in pids_under(out / "local", "")]
    for pid, started in left:
        if started is not None and procs.start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return stopped + ([f"{len(left)} engine processes"] if left else [])


def write_state(out: Path, state: dict[str, object]) -> None:
    """``demo.json``: what ``tierserve-dev demo stop`` needs (cluster name and state)."""
    (out / "demo.json").write_text(json.dumps(state, indent=1) + "\n")


def read_state(out: Path) -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads((out / "demo.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded

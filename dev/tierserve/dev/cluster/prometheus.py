"""A private Prometheus for local tests: Debian's ``prometheus`` package, unpacked (not
installed) into ``~/.cache/tierserve/prometheus-<version>/`` and reused.

Why not a system install: tests must not change the machine, and the package's service
would start a Prometheus on the default port. ``apt-get download`` + ``dpkg-deb -x``
needs no root beyond what apt already allows and leaves the system untouched.

:class:`LocalPrometheus` runs it bound to 127.0.0.1 on a free port with its own storage
directory and a static scrape config (targets with the labels the autoscaler's
``PrometheusSource`` selects on: ``namespace`` and ``tierserve_io_deployment``), and
stops it by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tierserve.dev.cluster.procs import free_port, wait_until

CACHE = Path.home() / ".cache" / "tierserve"


class PrometheusUnavailable(RuntimeError):
    """No prometheus binary could be obtained (no apt, no network, no package)."""


def _candidate_version() -> str:
    out = subprocess.run(["apt-cache", "policy", "prometheus"], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return version
    return ""


def _download(dest: Path) -> None:
    """``apt-get download`` the package (``apt-get update`` first when apt knows none)."""
    if not _candidate_version():
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", "prometheus"], cwd=tmp,
                             capture_output=True, text=True, check=False)
        debs = list(Path(tmp).glob("prometheus_*.deb"))
        if not debs:
            raise PrometheusUnavailable(f"apt-get download prometheus failed: {got.stderr}")
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True)
        staging.rename(dest)  # atomic: a half-unpacked tree is never reused


def binary() -> Path:
    """Path of the prometheus binary, downloading and unpacking it on first use."""
    if shutil.which("apt-get") is None:
        raise PrometheusUnavailable("no apt-get on this machine")
    cached = sorted(CACHE.glob("prometheus-*/usr/bin/prometheus"))
    if cached:
        return cached[-1]
    version = _candidate_version() or "latest"
    dest = CACHE / f"prometheus-{version.replace(':', '_')}"
    CACHE.mkdir(parents=True, exist_ok=True)
    _download(dest)
    path = dest / "usr" / "bin" / "prometheus"
    if not path.exists():
        raise PrometheusUnavailable(f"package unpacked to {dest} has no usr/bin/prometheus")
    return path


def binary_or_skip() -> Path:
    """:func:`binary` for a test: a machine that cannot get Prometheus skips the test,
    except under CI (``CI`` set), where a missing Prometheus is a failure."""
    try:
        return binary()
    except PrometheusUnavailable as exc:
        if os.environ.get("CI"):
            raise
        import pytest  # a test helper: pytest is there whenever this is called

        pytest.skip(str(exc))


def promtool() -> Path:
    """Path of promtool (rule checks and rule unit tests), from the same package."""
    path = binary().with_name("promtool")
    if not path.exists():
        raise PrometheusUnavailable(f"no promtool next to {binary()}")
    return path


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``/metrics`` URL and the labels its series get."""

    url: str
    labels: Mapping[str, str]


def scrape_config(targets: Sequence[ScrapeTarget], interval_s: float = 2.0) -> dict[str, Any]:
    """prometheus.yml: one static job per target (a job has one metrics path)."""
    jobs = []
    for i, t in enumerate(targets):
        u = urllib.parse.urlsplit(t.url)
        jobs.append({"job_name": f"engine-{i}", "scheme": u.scheme or "http",
                     "metrics_path": u.path or "/metrics",
                     "static_configs": [{"targets": [u.netloc], "labels": dict(t.labels)}]})
    every = f"{interval_s:g}s"
    return {"global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": jobs}


def deployment_labels(namespace: str, name: str) -> dict[str, str]:
    """An engine target's labels, as the chart's PodMonitor relabels engine pods:
    ``namespace`` and ``deployment`` (what the recording rules and dashboards group by)
    and ``tierserve_io_deployment`` (what ``PrometheusSource``'s default selector matches)."""
    return {"namespace": namespace, "deployment": name, "tierserve_io_deployment": name}


@dataclass
class LocalPrometheus:
    """A Prometheus process of our own; ``stop`` ends it by pid."""

    workdir: Path
    targets: list[ScrapeTarget]
    interval_s: float = 2.0
    port: int = field(default_factory=free_port)
    rule_files: list[Path] = field(default_factory=list)  # recording and alerting rules
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LocalPrometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        cfg = scrape_config(self.targets, self.interval_s)
        if self.rule_files:
            cfg["rule_files"] = [str(f.resolve()) for f in self.rule_files]
        config.write_text(yaml.safe_dump(cfg))
        cmd = [str(binary()), f"--config.file={config}",
               f"--storage.tsdb.path={self.workdir / 'data'}",
               f"--web.listen-address=127.0.0.1:{self.port}"]
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_until(self.ready, timeout, "Prometheus ready")
        return self

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise PrometheusUnavailable(f"prometheus exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (raises on a query error)."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """``GET /api/v1/<path>`` (series, labels, rules, alerts...); its ``data``."""
        url = f"{self.url}/api/v1/{path}?" + urllib.parse.urlencode(params or {})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"GET {path} {params} failed: {body}")
        return body["data"]

    def log_tail(self, chars: int = 3000) -> str:
        log = self.workdir / "prometheus.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

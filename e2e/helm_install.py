"""Install Tierserve into the e2e cluster the way a platform team would, and run the
operator process under the chart's ServiceAccount (its RBAC is what the test proves).

Pods of the chart's operator Deployment are kwok pods (nothing runs in them), so the
operator itself runs here as a process with a kubeconfig holding a token of the
``tierserve-operator`` ServiceAccount: every API call it makes is checked by RBAC.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.demo import stack

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_NS = "tierserve-system"
SA = "tierserve-operator"
AUTOSCALER_SA = "tierserve-autoscaler"


def helm_install(cluster: ClusterHandle) -> str:
    """``helm upgrade --install`` with the chart's default values (a default install must
    work); returns what helm printed (NOTES.txt)."""
    helm = str(cluster.binary("helm"))
    done = subprocess.run([helm, "upgrade", "--install", "tierserve",
                           str(ROOT / "charts" / "tierserve"), "--namespace", SYSTEM_NS,
                           "--create-namespace", "--wait=false"],
                          env=cluster.env(), check=True, capture_output=True, text=True)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/llmdeployments.tierserve.io", "crd/llmroutes.tierserve.io")
    return done.stdout


def service_account_kubeconfig(cluster: ClusterHandle, path: Path, sa: str = SA) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount ``sa`` (the demo's
    helper: the demo runs its components under the same tokens)."""
    return stack.service_account_kubeconfig(cluster, path, sa, SYSTEM_NS)


@dataclass
class OperatorProcess:
    """One operator process; stopped by pid, also on test failure (fixture finalizer)."""

    kubeconfig: Path
    log: Path
    identity: str
    metrics_port: int
    extra: list[str] = field(default_factory=list)
    lease: str | None = None  # shared only by tests of leader election
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        cmd = [sys.executable, "-m", "tierserve.cli.main", "operator",
               "--kubeconfig", str(self.kubeconfig), "--lease-namespace", SYSTEM_NS,
               "--identity", self.identity, "--metrics-port", str(self.metrics_port),
               "--resync-s", "3", "--lease-name", self.lease or f"e2e-{self.identity}",
               *self.extra]
        out = self.log.open("ab")
        # its own session: the local target's Ray processes (gcs, raylet and its agents)
        # join the operator's process group, so teardown can reap them even when the
        # operator was SIGKILLed before ray.shutdown() ran
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     start_new_session=True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.kill(signal.SIGTERM)
        self.kill(signal.SIGKILL)
        if self.proc is not None:  # whatever it left behind in its own process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[str, float]:
        """The operator's ``tierserve_operator_*`` samples, each summed over its labels."""
        import urllib.request

        from tierserve.dev.testing import sum_samples

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return sum_samples(resp.read().decode(), "tierserve_operator_")


@contextlib.contextmanager
def running(*procs: OperatorProcess) -> Iterator[tuple[OperatorProcess, ...]]:
    try:
        yield tuple(p.start() for p in procs)
    finally:
        for p in procs:
            p.stop()

"""Health probes of the control-plane processes and a small ``kubectl`` wrapper.

Probes use the standard library only: plain HTTP for etcd and kwok, HTTPS verified
against the cluster CA (with the admin client certificate) for the Kubernetes servers.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tierserve.dev.cluster.components import LOCALHOST, Layout


def _context(lay: Layout) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lay.pki.ca))
    ctx.load_cert_chain(str(lay.pki.cert("admin")), str(lay.pki.key("admin")))
    return ctx


def _get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except OSError as exc:  # URLError, connection refused, TLS errors, timeouts
        return 0, str(exc)


def probes(lay: Layout) -> dict[str, str]:
    """Component name -> health URL."""
    p = lay.ports
    return {
        "etcd": f"http://{LOCALHOST}:{p.etcd_client}/health",
        "kube-apiserver": f"{lay.server}/readyz",
        "kube-controller-manager": f"https://{LOCALHOST}:{p.controller_manager}/healthz",
        "kube-scheduler": f"https://{LOCALHOST}:{p.scheduler}/healthz",
        "kwok": f"http://{LOCALHOST}:{p.kwok}/healthz",
    }


def healthy(lay: Layout, component: str) -> bool:
    url = probes(lay)[component]
    ctx = _context(lay) if url.startswith("https") else None
    status, body = _get(url, ctx)
    if component == "etcd":
        return status == 200 and '"health":"true"' in body.replace(" ", "")
    return status == 200


class KubectlError(RuntimeError):
    """kubectl exited non-zero; carries its stderr."""


@dataclass(frozen=True)
class Kubectl:
    """``kubectl --kubeconfig <file>``; never falls back to ``~/.kube/config``."""

    kubeconfig: Path
    executable: str = "kubectl"

    def argv(self, args: Sequence[str]) -> list[str]:
        exe = shutil.which(self.executable) or self.executable
        return [exe, f"--kubeconfig={self.kubeconfig}", *args]

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(args), input=stdin, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout
